# 88-fire-spread.t -- a burst of fires larger than one transaction of the scheduler (500 fires) is spread
# over the agents by their loads as each run is placed: the loads are read once for the tick's fires
# (cx_runs_loads_t) and every run placed, in whichever chunk, counts on its agent.
#
# Three simulated agents; the first already has 300 active runs. 1,100 schedules fall due in the same
# second: the least loaded agent takes each fire, so the two idle agents are filled up to the first one's
# 300, and the 500 left go round the three: 166 or 167 more for the first agent, 466 or 467 for each of
# the others. Loads that forgot the runs placed by an earlier chunk would give the first agent none.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;

my $N = 1100;
my $BUSY = 300;
my $s = CxAgent::server('agents.heartbeat_timeout' => '60s', 'scheduler.leader_lease' => '3s');
my $sim = CxAgent::sim($s, 'spread', '-n', 3, '--prefix', 't88-agent-', '--run-for', '600s');
ok(wait_until(sub { $s->sql("SELECT COUNT(*) AS n FROM agents WHERE status = 'online' AND id LIKE 't88-agent-%'")->[0]{n} == 3 },
    20, 'agents'), 'three agents online');
my @agents = map { $_->{id} } @{ $s->sql("SELECT id FROM agents WHERE id LIKE 't88-agent-%' ORDER BY id") };

# the first agent's active runs (of pipelines of their own), written as a start would leave them
{
    my (@v, @b);
    for my $i (1 .. $BUSY) {
        push @v, "(?, ?, ?, 'running', NOW(3))";
        push @b, sprintf('00000000-0000-7000-8000-b%011d', $i), sprintf('00000000-0000-4000-8000-b%011d', $i), $agents[0];
    }
    $s->sql('INSERT INTO pipeline_runs (id, pipeline_id, agent_id, status, started_at) VALUES ' . join(', ', @v), @b);
}

# $N pipelines with a schedule each, all due at the database second $T
my $T = $s->sql('SELECT UNIX_TIMESTAMP(NOW()) AS t')->[0]{t} + 4;
CxAgent::seed_schedules($s, 'f', $N, $T);

ok(wait_until(sub { $s->sql("SELECT COUNT(*) AS n FROM pipeline_runs WHERE schedule_id LIKE '00000000-0000-4000-9000-f%'")->[0]{n} == $N },
    90, 'fired'), "the $N fires have their runs");
my %by = map { $_->{agent_id} // '' => $_->{n} } @{ $s->sql("SELECT agent_id, COUNT(*) AS n FROM pipeline_runs
    WHERE schedule_id LIKE '00000000-0000-4000-9000-f%' GROUP BY agent_id") };
my @got = map { $by{$_} // 0 } @agents;
is($got[0] + $got[1] + $got[2], $N, 'every fire on one of the three agents (' . join('/', @got) . ')');
ok($got[0] >= 166 && $got[0] <= 167, "the busy agent took 166 or 167 of them ($got[0]): the loads counted every run placed");
ok(abs($got[1] - $got[2]) <= 1 && $got[1] >= 466 && $got[1] <= 467, "the idle agents 466 or 467 each ($got[1], $got[2])");
my $dup = $s->sql("SELECT COUNT(*) AS n FROM (SELECT schedule_id FROM pipeline_runs WHERE schedule_id LIKE '00000000-0000-4000-9000-f%'
    GROUP BY schedule_id, scheduled_for HAVING COUNT(*) > 1) d")->[0]{n};
is($dup, 0, 'no fire has two runs');

CxAgent::sim_stop($sim);
is($s->stop, 0, 'server stops cleanly');
done_testing;
