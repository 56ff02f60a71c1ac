# 90-fires-ahead.t -- fires written ahead of their time (scheduler.prepare_ahead), through the real binary
# with conduix-agent-sim agents: a fire's run is written pending before its time with its start held
# (agent_commands.hold_until), no agent hears the start before the time, and at the time it goes out
# once. Whatever would change what a held fire does first undoes it (or, for a stop, cancels it): a
# disable, a stop, a start by hand, a change of the pipeline, a delete of the schedule or the pipeline,
# the agent going offline; a scheduler killed while fires are held leaves them to the respawned one;
# prepare_ahead 0 writes no fire ahead.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use Time::HiRes qw(time sleep);

my $SCALE = $CxTest::SCALE;
my $AHEAD = 10 * $SCALE; # seconds: the fires of a round are written this long before their time
my $s = CxAgent::server('scheduler.prepare_ahead' => "${AHEAD}s");
my $oper = $s->token(role => 'operator', sub => 't90-oper');
my $admin = $s->token(role => 'admin', sub => 't90-admin');
my $r;

my $sim = CxAgent::sim($s, 'a', '-n', 2, '--prefix', 't90-a-', '--run-for', '120s');
ok(wait_until(sub { $s->sql("SELECT COUNT(*) AS n FROM agents WHERE status = 'online'")->[0]{n} == 2 }, 20, 'agents online'),
    'two simulated agents online');

sub db_now() { $s->sql('SELECT UNIX_TIMESTAMP(NOW(3)) AS t')->[0]{t} }
sub pipeline_of($sid) { $s->sql('SELECT pipeline_id FROM schedules WHERE id = ?', $sid)->[0]{pipeline_id} }
# fire -- the run of schedule sid for the fire at t (Unix seconds), with its start command, or undef.
sub fire($sid, $t) {
    my $rows = $s->sql("SELECT r.id, r.status, r.agent_id, r.error_message, UNIX_TIMESTAMP(r.created_at) AS created,
        c.id AS cmd, c.status AS cmd_status, c.attempts, UNIX_TIMESTAMP(c.hold_until) AS hold, c.payload
        FROM pipeline_runs r LEFT JOIN agent_commands c ON c.run_id = r.id AND c.type = 'start_pipeline'
        WHERE r.schedule_id = ? AND r.scheduled_for = FROM_UNIXTIME(?)", $sid, $t);
    return $rows->[0];
}
# heard -- the start_pipeline commands the simulators received for the runs of pipeline pid.
sub heard($pid, @sims) {
    return grep { $_->{type} eq 'start_pipeline' && ($_->{pipeline_id} // '') eq $pid && !$_->{repeat} }
        map { CxAgent::sim_lines($_) } @sims;
}
sub undone_audit($pid) {
    $s->sql("SELECT before_json FROM audit_log WHERE action = 'schedule_fire_undone' AND target_id = ?", $pid);
}
sub schedule($sid) { $s->auth_get("/api/v1/schedules/$sid")->{json}{data} }

# ---- round 1: seven fires at T, each case its own schedule and pipeline ----
my $T = int(db_now()) + $AHEAD + 3;
my @case = qw(plain disable stop start update unsched unpipe);
my %sid;
@sid{@case} = CxAgent::seed_schedules($s, 'a', scalar @case, $T);
my %pid = map { $_ => pipeline_of($sid{$_}) } @case;

ok(wait_until(sub { (grep { fire($sid{$_}, $T) } @case) == @case }, $AHEAD, 'the fires written ahead'),
    'every fire of T is written ahead of its time');
my $before_T = db_now() < $T;
ok($before_T, 'before T (the premise of what follows)') or BAIL_OUT('the fires were not written before their time');
for my $c (@case) {
    my $f = fire($sid{$c}, $T);
    ok($f->{status} eq 'pending' && $f->{created} < $T && $f->{agent_id}, "$c: its run is pending on an agent, written before T");
    ok($f->{cmd_status} eq 'sent' && $f->{attempts} == 1 && abs($f->{hold} - $T) < 0.001,
        "$c: its start is claimed and held until T");
}
is_deeply([map { heard($pid{$_}, $sim) } @case], [], 'no agent heard any of the held starts');
{
    my $f = fire($sid{plain}, $T);
    my $list = $s->get("/api/v1/agents/$f->{agent_id}/commands", token => $admin);
    is($list->{status}, 200, "GET /agents/:id/commands") or diag $list->{content};
    is_deeply([grep { $_->{id} eq $f->{cmd} } @{ $list->{json}{data} // [] }], [], 'does not list a held start before its time');
}
ok(($s->metric('conduix_schedule_fires_ahead_total') // 0) >= @case, 'conduix_schedule_fires_ahead_total counts them');
is(schedule($sid{plain})->{fires}, 1, 'a held fire counts as a fire');

# what would change the fires, before T
my %held = map { $_ => fire($sid{$_}, $T) } @case;
$r = $s->post("/api/v1/schedules/$sid{disable}/disable", undef, token => $oper);
is($r->{status}, 200, 'disable a schedule whose fire is held') or diag $r->{content};
$r = $s->post("/api/v1/pipelines/$pid{stop}/stop", undef, token => $oper);
is($r->{status}, 200, 'stop the pipeline of a held fire: 200 (nothing to deliver)') or diag $r->{content};
is($r->{json}{data}{run}{id}, $held{stop}{id}, 'the run stopped is the held one');
is($r->{json}{data}{run}{status}, 'stopped', 'stopped');
$r = $s->post("/api/v1/pipelines/$pid{start}/start", undef, token => $oper);
ok($r->{status} == 200 || $r->{status} == 202, 'start by hand the pipeline of a held fire') or diag $r->{content};
my $manual = $r->{json}{data}{run}{id} // '';
isnt($manual, $held{start}{id}, 'a run of its own');
$r = $s->put("/api/v1/pipelines/$pid{update}", { config_yaml => "source:\n  type: kafka\n  topic: t90-changed\n" }, token => $oper);
is($r->{status}, 200, 'change the pipeline of a held fire') or diag $r->{content};
$r = $s->delete("/api/v1/schedules/$sid{unsched}", token => $oper);
ok($r->{status} == 200 || $r->{status} == 204, 'delete a schedule whose fire is held') or diag $r->{content};
$r = $s->delete("/api/v1/pipelines/$pid{unpipe}", token => $admin);
ok($r->{status} == 200 || $r->{status} == 204, 'delete the pipeline of a held fire: not refused as running') or diag $r->{content};
ok(db_now() < $T, 'all of it before T') or BAIL_OUT('the changes were not made before the fires\' time');

for my $c (qw(disable start update unsched unpipe)) {
    is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE id = ?', $held{$c}{id})->[0]{n}, 0, "$c: the held fire is undone");
    is($s->sql('SELECT COUNT(*) AS n FROM agent_commands WHERE id = ?', $held{$c}{cmd})->[0]{n}, 0, "$c: its start too");
    my $a = undone_audit($pid{$c});
    ok(@$a == 1 && $a->[0]{before_json} =~ /\Q$held{$c}{id}\E/, "$c: audited as schedule_fire_undone, naming the run");
}
is(schedule($sid{disable})->{fires}, 0, 'disable: the undone fire is not counted');
for my $c (qw(start update)) {
    my $sc = schedule($sid{$c});
    is($sc->{fires}, 0, "$c: not counted");
    is($s->sql('SELECT UNIX_TIMESTAMP(next_run_at) AS t FROM schedules WHERE id = ?', $sid{$c})->[0]{t}, $T, "$c: due at T again");
}
{
    my $f = fire($sid{stop}, $T);
    is($f->{status}, 'stopped', 'stop: the run stays, stopped');
    like($f->{error_message} // '', qr/before the fire's time/, 'saying it was stopped before its time');
    is($f->{cmd_status}, 'cancelled', 'its start cancelled');
    ok(!defined $f->{hold}, 'and no longer held');
}

# at T
sleep 0.1 while db_now() < $T;
ok(wait_until(sub { heard($pid{plain}, $sim) >= 1 }, 5 * $SCALE, 'the plain fire heard'), 'at T the held start goes out');
sleep 2 * $SCALE; # anything else due at T has happened
{
    my @h = heard($pid{plain}, $sim);
    is(scalar @h, 1, 'plain: heard once');
    ok($h[0]{ts} >= $T * 1000, "plain: not before its time ($h[0]{ts} ms, T $T s)");
    ok($h[0]{ts} - $T * 1000 < 2000 * $SCALE, 'plain: within 2 s of it');
    is($h[0]{run_id}, $held{plain}{id}, 'plain: the start of the held run');
    my $f = fire($sid{plain}, $T);
    ok(!defined $f->{hold}, 'plain: released');
    is($f->{attempts}, 1, 'plain: as its first attempt');
}
is_deeply([heard($pid{$_}, $sim)], [], "$_: no start heard") for qw(disable stop unsched unpipe);
ok(!fire($sid{disable}, $T), 'disable: no run for T');
{
    my @h = heard($pid{start}, $sim);
    is_deeply([map { $_->{run_id} } @h], [$manual], 'start: only the run started by hand was heard');
    ok(!fire($sid{start}, $T), 'start: no run for T');
    is(schedule($sid{start})->{skipped}, 1, 'start: at T the fire met the run started by hand: skipped (policy skip)');
}
{
    my $f = fire($sid{update}, $T);
    ok($f && $f->{created} >= $T, 'update: it fired at its time');
    like($f->{payload} // '', qr/t90-changed/, 'update: with the changed config');
    my @h = heard($pid{update}, $sim);
    ok(@h == 1 && $h[0]{run_id} eq $f->{id} && $h[0]{ts} >= $T * 1000, 'update: its start heard once, at its time');
}
is($s->metric('conduix_schedule_fires_undone_total'), 5, 'conduix_schedule_fires_undone_total');

# ---- round 2: the scheduler killed while a fire is held; an agent offline before its held fire ----
CxAgent::sim_stop($sim);
ok(wait_until(sub { $s->sql("SELECT COUNT(*) AS n FROM agents WHERE status = 'online'")->[0]{n} == 0 }, 20, 'a offline'),
    'the first agents gone');
my $b = CxAgent::sim($s, 'b', '-n', 1, '--prefix', 't90-b-', '--run-for', '120s');
my $c = CxAgent::sim($s, 'c', '-n', 1, '--prefix', 't90-c-', '--run-for', '120s');
ok(wait_until(sub { $s->sql("SELECT COUNT(*) AS n FROM agents WHERE status = 'online'")->[0]{n} == 2 }, 20, 'b and c online'),
    'two other agents');
my $T2 = int(db_now()) + $AHEAD + 3;
my ($kill, $off) = CxAgent::seed_schedules($s, 'b', 2, $T2);
ok(wait_until(sub { fire($kill, $T2) && fire($off, $T2) }, $AHEAD, 'written'), 'both fires of T2 written ahead');
my %on = map { $_ => fire($_, $T2)->{agent_id} } $kill, $off;
ok($on{$off} =~ /^t90-[bc]-/, "the fire is on one of them ($on{$off})");
my ($gone, $stays) = $on{$off} =~ /^t90-b-/ ? ($b, $c) : ($c, $b);
my $off_run = fire($off, $T2)->{id};
ok(kill('USR1', $gone->{h}{pid}), "its agent $on{$off} stops beating");
ok(wait_until(sub { $s->sql('SELECT status FROM agents WHERE id = ?', $on{$off})->[0]{status} eq 'offline' }, $AHEAD, 'offline'),
    'and goes offline before T2');
ok(wait_until(sub { !fire($off, $T2) }, 5, 'undone'), 'its held fire is undone');
like(undone_audit(pipeline_of($off))->[0]{before_json} // '', qr/went offline/, 'audited: the agent went offline');
my $victim = $s->child_pid('scheduler');
ok(kill('KILL', $victim), "SIGKILL the scheduler ($victim) while the fire of T2 is held");
ok(db_now() < $T2, 'before T2') or BAIL_OUT('round 2 did not happen before its fires\' time');
my $kpid = pipeline_of($kill);
sleep 0.1 while db_now() < $T2;
ok(wait_until(sub { heard($kpid, $sim, $b, $c) >= 1 }, 15 * $SCALE, 'heard'), 'the respawned scheduler releases the held start');
{
    my @h = heard($kpid, $sim, $b, $c);
    ok(@h == 1 && $h[0]{ts} >= $T2 * 1000, 'once, not before its time');
    ok($h[0]{ts} - $T2 * 1000 < 3000 * $SCALE, 'within 3 s of it');
    isnt($s->child_pid('scheduler'), $victim, 'by a new scheduler');
}
ok(wait_until(sub { fire($off, $T2) }, 5 * $SCALE, 'fired'), 'the undone fire fires at its time');
{
    my $f = fire($off, $T2);
    isnt($f->{agent_id}, $on{$off}, 'on an agent that is online');
    isnt($f->{id}, $off_run, 'as a run of its own');
    my @h = heard(pipeline_of($off), $sim, $b, $c);
    ok(@h == 1 && $h[0]{run_id} eq $f->{id} && $h[0]{ts} >= $T2 * 1000, 'its start heard once, at its time');
}

# ---- a burst: more fires at one time than the scan reads at once (1,000), so it pages ahead ----
{
    my $N = 2500;
    my $T4 = int(db_now()) + $AHEAD + 3;
    my @burst = CxAgent::seed_schedules($s, 'd', $N, $T4);
    my $at = sub ($q) {
        $s->sql("SELECT COUNT(*) AS n, COUNT(DISTINCT schedule_id) AS s, SUM(created_at < scheduled_for) AS ahead FROM
            pipeline_runs WHERE schedule_id LIKE '00000000-0000-4000-9000-d%' AND scheduled_for = FROM_UNIXTIME(?)$q", $T4)->[0];
    };
    ok(wait_until(sub { $at->('')->{n} == $N }, $AHEAD, 'the burst written'), "a burst of $N fires at one time is written");
    ok(db_now() < $T4, 'before its time');
    my $w = $at->('');
    is($w->{s}, $N, 'one run per schedule');
    is($w->{ahead}, $N, 'each written ahead of its time');
    sleep 0.1 while db_now() < $T4;
    my %seen;
    ok(wait_until(sub {
        %seen = ();
        $seen{ $_->{run_id} }++ for grep { $_->{type} eq 'start_pipeline' && !$_->{repeat} && ($_->{pipeline_id} // '') =~ /-8000-d/ }
            CxAgent::sim_lines($stays);
        keys(%seen) == $N;
    }, 20 * $SCALE, 'the burst heard'), "every start of the burst heard after its time");
    is_deeply([grep { $seen{$_} != 1 } keys %seen], [], 'each once');
    is(scalar(grep { $_->{ts} < $T4 * 1000 } grep { ($_->{pipeline_id} // '') =~ /-8000-d/ } CxAgent::sim_lines($stays)), 0,
        'none before its time');
    is($s->sql("SELECT COUNT(*) AS n FROM agent_commands WHERE hold_until IS NOT NULL")->[0]{n}, 0, 'nothing left held');
}

# ---- round 3: prepare_ahead 0 ----
my $ahead = $s->metric('conduix_schedule_fires_ahead_total');
$s->set_config('scheduler.prepare_ahead' => '0s');
$s->write_config;
$s->signal('HUP');
ok(wait_until(sub { index($s->log, 'configuration reloaded') >= 0 }, 10, 'reloaded'), 'reload with scheduler.prepare_ahead 0');
sleep 1;
my $T3 = int(db_now()) + 4;
my ($now) = CxAgent::seed_schedules($s, 'c', 1, $T3);
ok(wait_until(sub { fire($now, $T3) }, 10 * $SCALE, 'fired'), 'a fire');
ok(fire($now, $T3)->{created} >= $T3, 'written at its time, not ahead');
is($s->metric('conduix_schedule_fires_ahead_total'), $ahead, 'none written ahead');

is($s->stop, 0, 'stop exits 0');
done_testing;
