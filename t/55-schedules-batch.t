# 55-schedules-batch.t -- fires started in batches (cx_runs_start_many): many schedules due in the same
# second on two instances, each fire exactly once, with its audit row and its counters, and the overlap
# policies applied per fire inside the batch.
#
# Part 1, Redis up, three simulated agents: 200 schedules due at the same second T, plus in the same
# second a replace-policy schedule whose pipeline is running (the run is stopped, a new one started), a
# skip-policy one (skipped), an allow-policy one (a failed run saying why) and two schedules of one
# pipeline (one run, the other skipped). Part 2, no agent online and Redis down, so that both instances
# fire and claim at once: 200 schedules due at the same second, each exactly one failed run naming why,
# 200 audit rows, the failures counted once. Stops the shared Redis (CxTest restarts it at exit whatever
# happens).
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use Time::HiRes qw(time sleep);
use List::Util qw(min);

# The agents' heartbeat timeout is not what this test is about: long enough (10 s, scaled) that a loaded
# machine's late beat does not take an agent offline in part 1 (its runs would fail over, and the skip
# policy's active run with them); part 2 waits for the agents to go offline.
my %cfg = (%CxAgent::FAST, 'scheduler.leader_lease' => '3s', 'agents.heartbeat_timeout' => (10 * $CxTest::SCALE) . 's');
my $a = CxTest->new(config => \%cfg);
$a->start;
my $b = $a->replica(config => \%cfg);
$b->start;
my @inst = ($a, $b);
my $S = '/api/v1/schedules';
my $N = 200;

my $sim = CxAgent::sim($a, 'b', '-n', 3, '--prefix', 't55-agent-', '--run-for', '600s');
ok(wait_until(sub { $a->sql("SELECT COUNT(*) AS n FROM agents WHERE status = 'online'")->[0]{n} == 3 }, 20, 'agents'),
    'three agents online');

sub seed($tag, $n, $at) { CxAgent::seed_schedules($a, $tag, $n, $at) }
sub in_list($n) { '(' . join(', ', ('?') x $n) . ')' }
sub sched($sid) { $a->auth_get("$S/$sid")->{json}{data} }
sub runs_of($sid) {
    $a->sql('SELECT id, status, agent_id, error_message, UNIX_TIMESTAMP(scheduled_for) AS fire FROM pipeline_runs
        WHERE schedule_id = ? ORDER BY created_at', $sid);
}
sub metric_sum($name) { my $t = 0; $t += $_->metric($name) // 0 for @inst; $t }
sub db_now() { $a->sql('SELECT UNIX_TIMESTAMP(NOW()) AS t')->[0]{t} }

# ---- part 1: a batch with agents, and the overlap policies inside it ----
my %pipe = map { $_ => CxAgent::create_pipeline($a, "t55-$_") } qw(replace skip allow twice);
my %pol = (replace => 'replace', skip => 'skip', allow => 'allow');
my %before;
for my $k (qw(replace skip allow)) {
    my $r = $a->auth_post("/api/v1/pipelines/$pipe{$k}{id}/start");
    is($r->{status} == 200 || $r->{status} == 202 ? 1 : 0, 1, "$k: the pipeline is started by hand ($r->{status})");
    $before{$k} = $r->{json}{data}{run}{id};
}
ok(wait_until(sub { !grep { CxAgent::run_status($a, $pipe{$_}{id}) ne 'running' } keys %before }, 20, 'running'),
    'the three pipelines run');
my %sid;
for my $k (qw(replace skip allow)) {
    my $r = $a->auth_post($S, { pipeline_id => $pipe{$k}{id}, cron_expression => '@every 1h', overlap_policy => $pol{$k} });
    die "create: $r->{content}" unless $r->{status} == 201;
    $sid{$k} = $r->{json}{data}{id};
}
for my $k (qw(twice1 twice2)) {
    my $r = $a->auth_post($S, { pipeline_id => $pipe{twice}{id}, cron_expression => '@every 1h' });
    die "create: $r->{content}" unless $r->{status} == 201;
    $sid{$k} = $r->{json}{data}{id};
}
my $T = db_now() + 4;
my @plain = seed('a', $N, $T);
$a->sql('UPDATE schedules SET next_run_at = FROM_UNIXTIME(?) WHERE id IN ' . in_list(5), $T, values %sid);

my @all = (@plain, values %sid);
ok(wait_until(sub { $a->sql('SELECT COUNT(*) AS n FROM schedules WHERE next_run_at > FROM_UNIXTIME(?) AND id IN ' . in_list(scalar @all),
    $T, @all)->[0]{n} == @all }, 60, 'every fire claimed'), 'every schedule due at T was fired');
{
    my $runs = $a->sql('SELECT schedule_id, COUNT(*) AS n, SUM(agent_id IS NOT NULL) AS on_agent, MIN(UNIX_TIMESTAMP(scheduled_for)) AS fire
        FROM pipeline_runs WHERE schedule_id IN ' . in_list($N) . ' GROUP BY schedule_id', @plain);
    is(scalar @$runs, $N, "each of the $N schedules has a run");
    is_deeply([grep { $_->{n} != 1 } @$runs], [], 'exactly one each');
    is_deeply([grep { $_->{on_agent} != 1 || $_->{fire} != $T } @$runs], [], 'each on an agent, for the fire time T');
    my $by = $a->sql('SELECT agent_id, COUNT(*) AS n FROM pipeline_runs WHERE schedule_id IN ' . in_list($N) . ' GROUP BY agent_id', @plain);
    is(scalar @$by, 3, 'spread over the three agents');
    cmp_ok(min(map { $_->{n} } @$by), '>=', 50, 'evenly enough (' . join('/', map { $_->{n} } @$by) . ')');
    my $audit = $a->sql("SELECT COUNT(*) AS n, COUNT(DISTINCT target_id) AS d FROM audit_log WHERE action = 'schedule_fire' AND actor = 'scheduler'
        AND target_id LIKE '00000000-0000-4000-8000-a%'")->[0];
    is($audit->{n}, $N, "$N audit rows schedule_fire");
    is($audit->{d}, $N, 'one per pipeline');
    my $c = $a->sql('SELECT SUM(fires) AS f, SUM(skipped) AS s, SUM(missed) AS m, SUM(failures) AS x, SUM(last_run_id IS NOT NULL) AS l
        FROM schedules WHERE id IN ' . in_list($N), @plain)->[0];
    is_deeply([@$c{qw(f s m x l)}], [$N, 0, 0, 0, $N], 'the schedules count one fire each, nothing else, and name their run');
    my $bad = $a->sql('SELECT COUNT(*) AS n FROM schedules s JOIN pipeline_runs r ON r.id = s.last_run_id
        WHERE s.id IN ' . in_list($N) . ' AND r.schedule_id <> s.id', @plain)->[0]{n};
    is($bad, 0, "each last_run_id is the schedule's own run");
}
ok(wait_until(sub {
    my %ids = map { $_->{id} => 1 } @{ $a->sql('SELECT id FROM pipeline_runs WHERE schedule_id IN ' . in_list($N), @plain) };
    my %seen;
    $seen{ $_->{run_id} }++ for grep { $_->{type} eq 'start_pipeline' && $ids{ $_->{run_id} } && !$_->{repeat} } CxAgent::sim_lines($sim);
    keys %seen == $N && !grep { $_ > 1 } values %seen
}, 30, 'starts heard'), "the agents heard each of the $N starts once");
{
    my $runs = $a->sql('SELECT id FROM pipeline_runs WHERE schedule_id IN ' . in_list($N), @plain);
    my @by = map { my $s = $_; scalar grep { index($s->log, "run $_->{id} of pipeline") >= 0 } @$runs } @inst;
    is($by[0] + $by[1], $N, "each run was created by one instance ($by[0] + $by[1])");
}

# the policies, per fire, inside the same batch
{
    my @r = @{ runs_of($sid{replace}) };
    is(scalar @r, 1, 'replace: one run for the fire');
    my $old = $a->sql('SELECT status, error_message FROM pipeline_runs WHERE id = ?', $before{replace})->[0];
    is($old->{status}, 'stopped', 'replace: the active run was stopped');
    like($old->{error_message} // '', qr/replaced by the fire of schedule \Q$sid{replace}\E/, 'replace: saying by what');
    ok($r[0]{agent_id}, 'replace: the new run is on an agent');
    is(sched($sid{replace})->{fires}, 1, 'replace: fires 1');

    is(scalar @{ runs_of($sid{skip}) }, 0, 'skip: no run');
    my $sk = sched($sid{skip});
    is_deeply([@$sk{qw(fires skipped)}], [0, 1], 'skip: counted skipped');
    is(CxAgent::run_status($a, $pipe{skip}{id}), 'running', 'skip: the active run goes on');

    my @w = @{ runs_of($sid{allow}) };
    is(scalar @w, 1, 'allow: one run');
    is($w[0]{status}, 'failed', 'allow: failed (a pipeline runs once at a time)');
    like($w[0]{error_message} // '', qr/overlap policy allow/, 'allow: saying why');
    is(sched($sid{allow})->{failures}, 1, 'allow: counted a failure');

    my @t = (runs_of($sid{twice1}), runs_of($sid{twice2}));
    my @t1 = (sched($sid{twice1}), sched($sid{twice2}));
    is(scalar(map { @$_ } @t), 1, 'two schedules of one pipeline due together: one run');
    is($t1[0]{fires} + $t1[1]{fires}, 1, 'one fire counted');
    is($t1[0]{skipped} + $t1[1]{skipped}, 1, 'and the other skipped');
}
is(metric_sum('conduix_schedule_fires_total'), $N + 2, 'conduix_schedule_fires_total over the instances');
is(metric_sum('conduix_schedule_skips_total'), 2, 'conduix_schedule_skips_total');
is(metric_sum('conduix_schedule_failures_total'), 1, 'conduix_schedule_failures_total');
cmp_ok(metric_sum('conduix_schedule_fire_lag_seconds_count'), '>=', $N + 4, 'the fire lag histogram counts them');

# ---- part 2: two instances claiming at once (Redis down), no agent online ----
CxAgent::sim_stop($sim);
ok(wait_until(sub { $a->sql("SELECT COUNT(*) AS n FROM agents WHERE status = 'online'")->[0]{n} == 0 }, 30, 'agents offline'),
    'the agents went offline');
$a->stop_redis;
ok(wait_until(sub { (grep { ($_->metric('conduix_scheduler_leader') // 0) == 1 } @inst) == 2 }, 30, 'both fire'),
    'Redis down: both instances fire');
my $f0 = metric_sum('conduix_schedule_failures_total');
my $T2 = db_now() + 4;
my @nop = seed('b', $N, $T2);
ok(wait_until(sub { $a->sql('SELECT COUNT(*) AS n FROM schedules WHERE next_run_at > FROM_UNIXTIME(?) AND id IN ' . in_list($N),
    $T2, @nop)->[0]{n} == $N }, 60, 'every fire claimed'), 'every schedule due at T2 was fired');
{
    my $runs = $a->sql('SELECT schedule_id, COUNT(*) AS n, SUM(status = \'failed\' AND agent_id IS NULL AND error_message LIKE \'%no agent%\') AS f
        FROM pipeline_runs WHERE schedule_id IN ' . in_list($N) . ' GROUP BY schedule_id', @nop);
    is(scalar @$runs, $N, "each of the $N schedules has a run");
    is_deeply([grep { $_->{n} != 1 } @$runs], [], 'exactly one each, with two instances claiming');
    is_deeply([grep { $_->{f} != 1 } @$runs], [], 'each failed without an agent, saying why');
    my $audit = $a->sql("SELECT COUNT(*) AS n, COUNT(DISTINCT target_id) AS d FROM audit_log WHERE action = 'schedule_fire'
        AND target_id LIKE '00000000-0000-4000-8000-b%'")->[0];
    is_deeply([@$audit{qw(n d)}], [$N, $N], "$N audit rows, one per pipeline");
    my $c = $a->sql('SELECT SUM(fires) AS f, SUM(skipped) AS s, SUM(failures) AS x FROM schedules WHERE id IN ' . in_list($N), @nop)->[0];
    is_deeply([@$c{qw(f s x)}], [0, 0, $N], 'counted failures once each');
    is(metric_sum('conduix_schedule_failures_total') - $f0, $N, 'conduix_schedule_failures_total over both instances');
    my $runs2 = $a->sql('SELECT id FROM pipeline_runs WHERE schedule_id IN ' . in_list($N), @nop);
    my @by = map { my $s = $_; scalar grep { index($s->log, "run $_->{id} of pipeline") >= 0 } @$runs2 } @inst;
    is($by[0] + $by[1], $N, "each recorded by one instance ($by[0] + $by[1])");
}
$a->start_redis;
done_testing;
