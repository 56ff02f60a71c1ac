# 53-scheduler-replicas.t -- exactly once across instances: three instances on one MariaDB and Redis with
# four @every 2s schedules. For 20 s one instance leads and each fire time has exactly one run (no
# duplicate, no gap), started once on an agent and logged by one instance. Then the leader's scheduler is
# frozen (SIGSTOP): another instance takes over within the lease + 2 s; thawed, the old one finds it lost
# the lease and fires nothing twice. Then the new leader's scheduler is killed (SIGKILL): respawned, the
# fires go on. Through it all every fire time is one run or counted missed, never two. Last, a disable,
# a delete, an update and a create made through an instance that does not lead take effect on the
# leader within a second.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use Time::HiRes qw(time sleep);

my $LEASE = 3;
my %cfg = (%CxAgent::FAST, 'scheduler.leader_lease' => "${LEASE}s");
my $a = CxTest->new(config => \%cfg);
$a->start;
my @inst = ($a, map { $a->replica(config => \%cfg) } 1 .. 2);
$_->start for @inst[1, 2];
my $S = '/api/v1/schedules';
my $SCALE = $CxTest::SCALE;

my $sim = CxAgent::sim($a, 'r', '-n', 3, '--prefix', 't53-agent-', '--run-for', '300ms');
ok(wait_until(sub { $a->sql("SELECT COUNT(*) AS n FROM agents WHERE status = 'online'")->[0]{n} == 3 }, 20, 'agents'),
    'three agents online');

my @sched;
for my $i (1 .. 4) {
    my $p = CxAgent::create_pipeline($a, "t53-pipe-$i");
    my $r = $a->auth_post($S, { pipeline_id => $p->{id}, cron_expression => '@every 2s' });
    die "create: $r->{content}" unless $r->{status} == 201;
    push @sched, $r->{json}{data}{id};
}

# leaders -- the indexes of the instances whose scheduler fires now.
sub leaders() { grep { ($inst[$_]->metric('conduix_scheduler_leader') // 0) == 1 } 0 .. $#inst }

# check -- every fire time of every schedule, from its first to its last run: one run, or (with
# $allow_missed) counted missed; never two runs. Each run started once on an agent.
sub check($what, $allow_missed) {
    my %starts;
    $starts{ $_->{run_id} }++ for grep { $_->{type} eq 'start_pipeline' && !$_->{repeat} } CxAgent::sim_lines($sim);
    for my $sid (@sched) {
        my $runs = $a->sql('SELECT id, UNIX_TIMESTAMP(scheduled_for) AS fire FROM pipeline_runs WHERE schedule_id = ?
            ORDER BY scheduled_for', $sid);
        my @f = map { $_->{fire} } @$runs;
        my %n;
        $n{$_}++ for @f;
        is_deeply([grep { $n{$_} > 1 } sort keys %n], [], "$what: schedule $sid: no fire time ran twice");
        my @gaps = grep { $f[$_] - $f[$_ - 1] != 2 } 1 .. $#f;
        my $sd = $a->auth_get("$S/$sid")->{json}{data};
        if ($allow_missed) {
            my $slots = ($f[-1] - $f[0]) / 2 + 1;
            cmp_ok(@f + $sd->{missed} + $sd->{skipped}, '>=', $slots, "$what: schedule $sid: every fire time is a run or counted");
        } else {
            is_deeply([map { "$f[$_ - 1] -> $f[$_]" } @gaps], [], "$what: schedule $sid: no gap");
            is($sd->{missed} + $sd->{skipped} + $sd->{failures}, 0, "$what: schedule $sid: nothing missed, skipped or failed");
        }
        is_deeply([grep { ($starts{ $_->{id} } // 0) > 1 } @$runs], [], "$what: schedule $sid: no run started twice");
    }
}

# created_in -- how many instance logs report the creation of run $id.
sub created_in($id) { scalar grep { index($_->log, "run $id of pipeline") >= 0 } @inst }

ok(wait_until(sub { my @l = leaders(); @l == 1 }, 20, 'one leader'), 'one instance leads');
my ($lead) = leaders();
note("leader: instance $lead");
my $t0 = time;
sleep 20;
my @l = leaders();
is_deeply(\@l, [$lead], 'the same single leader after 20 s');
my $n = $a->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE schedule_id IN (' . join(',', ('?') x 4) . ')', @sched)->[0]{n};
cmp_ok($n, '>=', 4 * int(18 / 2) - 4, "the schedules fired ($n runs)");
check('20 s on three instances', 0);
{
    my $runs = $a->sql('SELECT id FROM pipeline_runs WHERE schedule_id IS NOT NULL');
    is_deeply([grep { created_in($_->{id}) != 1 } @$runs], [], 'each run was created by one instance');
    my @by = map { my $i = $_; scalar grep { index($inst[$i]->log, "run $_->{id} of pipeline") >= 0 } @$runs } 0 .. $#inst;
    is($by[$lead], scalar @$runs, 'all of them by the leader');
}
is($a->redis('PTTL', 'conduix:scheduler:leader') > 0 ? 1 : 0, 1, 'the lease has a time to live');

# ---- the leader freezes ----
my $frozen = $inst[$lead]->child_pid('scheduler');
ok(kill('STOP', $frozen), "SIGSTOP the leader's scheduler ($frozen)");
my $stopped = time;
ok(wait_until(sub { my @l = grep { $_ != $lead } leaders(); @l == 1 }, ($LEASE + 2) * 2, 'takeover'), 'another instance takes over');
my $took = time - $stopped;
cmp_ok($took, '<=', ($LEASE + 2) * $SCALE, sprintf('within the lease + 2 s (%.1f s)', $took));
my ($new) = grep { $_ != $lead } leaders();
my $at = $a->sql('SELECT UNIX_TIMESTAMP(NOW(3)) AS t')->[0]{t};
ok(wait_until(sub { $a->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE schedule_id IS NOT NULL AND created_at > FROM_UNIXTIME(?)',
    $at)->[0]{n} >= 4 }, 10, 'fires after the takeover'), 'the new leader fires');
sleep 4;
ok(kill('CONT', $frozen), 'SIGCONT the old one');
ok(wait_until(sub { index($inst[$lead]->log, 'no longer the leader') >= 0 }, 10, 'lost'), 'the thawed scheduler sees it lost the lease');
sleep 4;
is_deeply([leaders()], [$new], 'one leader: the new one');
check('after a frozen leader', 1);

# ---- the leader's scheduler is killed ----
my $victim = $inst[$new]->child_pid('scheduler');
ok(kill('KILL', $victim), "SIGKILL the leader's scheduler ($victim)");
ok(wait_until(sub { my $p = $inst[$new]->child_pid('scheduler'); $p && $p != $victim }, 20, 'respawn'), 'respawned');
$at = $a->sql('SELECT UNIX_TIMESTAMP(NOW(3)) AS t')->[0]{t};
ok(wait_until(sub { $a->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE schedule_id IS NOT NULL AND created_at > FROM_UNIXTIME(?)',
    $at)->[0]{n} >= 4 }, ($LEASE + 2) * 2, 'fires after the kill'), 'the fires go on');
ok(wait_until(sub { leaders() == 1 }, 10, 'one leader'), 'one leader again');
sleep 2;
check('after a killed scheduler', 1);
{
    my $runs = $a->sql('SELECT id FROM pipeline_runs WHERE schedule_id IS NOT NULL');
    is_deeply([grep { created_in($_->{id}) != 1 } @$runs], [], 'still each run created by one instance');
    my $total = 0;
    $total += $a->auth_get("$S/$_")->{json}{data}{fires} for @sched;
    is($total, scalar @$runs, 'the schedules\' fires count their runs');
}

# ---- changes through an instance that does not lead take effect on the leader within a second ----
my ($leader) = leaders();
my ($f) = grep { $_ != $leader } 0 .. $#inst;
my $F = $inst[$f];
note("changes through instance $f, leader $leader");
sub db_now() { $a->sql('SELECT UNIX_TIMESTAMP(NOW(3)) AS t')->[0]{t} }
sub runs_after($sid, $t) {
    $a->sql('SELECT id, UNIX_TIMESTAMP(scheduled_for) AS fire, UNIX_TIMESTAMP(created_at) AS created FROM pipeline_runs
        WHERE schedule_id = ? AND created_at > FROM_UNIXTIME(?) ORDER BY scheduled_for', $sid, $t);
}
my $oper = $F->token(role => 'operator', sub => 't53-oper');
is($F->post("$S/$sched[0]/disable", undef, token => $oper)->{status}, 200, 'disable through the follower');
my $t_dis = db_now();
is($F->delete("$S/$sched[1]", token => $oper)->{status}, 200, 'delete through the follower');
my $t_del = db_now();
is($F->put("$S/$sched[2]", { cron_expression => '@every 3s' }, token => $oper)->{status}, 200, 'an update through the follower');
my $t_put = db_now();
my $p5 = CxAgent::create_pipeline($F, 't53-pipe-5');
my $r = $F->post($S, { pipeline_id => $p5->{id}, cron_expression => '@every 2s' }, token => $oper);
is($r->{status}, 201, 'a create through the follower');
my ($new, $t_new) = ($r->{json}{data}{id}, db_now());
ok(wait_until(sub { @{ runs_after($sched[2], $t_put) } >= 3 && @{ runs_after($new, $t_new) } >= 2 }, 20, 'fires'),
    'the updated and the created schedule fire');
is_deeply(runs_after($sched[0], $t_dis + 1), [], 'the disabled schedule: no run created a second after the disable');
is_deeply(runs_after($sched[1], $t_del + 1), [], 'the deleted one: none either');
my @u = @{ runs_after($sched[2], $t_put) };
cmp_ok($u[0]{created} - $t_put, '<=', 3 + 1 * $SCALE, 'the updated one: its first fire within its new interval and a second');
is_deeply([map { $u[$_]{fire} - $u[ $_ - 1 ]{fire} } 2 .. $#u], [(3) x ($#u - 1)], 'then every 3 s');
my @n = @{ runs_after($new, $t_new) };
cmp_ok($n[0]{created} - $t_new, '<=', 2 + 1 * $SCALE, 'the created one: its first fire within its interval and a second');
is_deeply([grep { index($inst[$leader]->log, "run $_->{id} of pipeline") < 0 } @u, @n], [], 'each by the leader');

$_->stop for reverse @inst;
done_testing;
