# 77-unlisted-grace.t -- the heartbeat reconciliation fails a run its agent no longer reports only once
# the run has been unlisted for agents.heartbeat_timeout (counted from the last beat that listed it), not
# at the first beat after the timeout that does not list it: a completed or stopped event still on its
# way (queued in the dispatcher under a burst) ends the run with its own status first. A run unlisted
# for longer than the timeout is failed as before, with the reason. The agent beats over REST here so
# the test says exactly what each beat lists; its run events are published on pipeline:events as an
# agent does.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;
use Time::HiRes qw(time sleep);

my $TIMEOUT = 6;    # agents.heartbeat_timeout: the grace under test, long beside hbmon's pace
my $s = CxAgent::server('agents.heartbeat_timeout' => "${TIMEOUT}s");
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't77-oper');
my $ID = 't77-a';
my $tok = $s->token(role => 'agent', sub => $ID);
my @list;
my $cpu = 1.5;

# Each beat lists @list, with counts for each.
my $rest = CxAgent::Rest->new($s, $ID, $tok, sub {
    (cpu_usage => $cpu, pipelines => [@list],
        pipeline_stats => [map { { pipeline_id => $_, status => 'running', processed_count => 7, error_count => 0 } } @list]);
});
sub beat { $rest->beat }
# beating -- wait_until with beats meanwhile.
sub beating : prototype(&$$) {
    my ($code, $timeout, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return $rest->await($code, $timeout, $name);
}
sub beat_for($seconds) { $rest->beat_for($seconds) }
sub run_row($id) { $s->sql('SELECT status, error_message, last_listed_at FROM pipeline_runs WHERE id = ?', $id)->[0] }
sub stored_cpu { $s->sql('SELECT cpu_usage FROM agents WHERE id = ?', $ID)->[0]{cpu_usage} // -1 }

beating { (($s->sql('SELECT status FROM agents WHERE id = ?', $ID)->[0] // {})->{status} // '') eq 'online' } 20,
    'the REST agent is online';
my (%pipe, %run);
for my $name (qw(ends vanishes)) {
    $pipe{$name} = CxAgent::create_pipeline($s, "t77-$name")->{id};
    my $r = $s->post("$P/$pipe{$name}/start", { agent_id => $ID }, token => $oper);
    ok($r->{status} == 200 || $r->{status} == 202, "start $name on the agent (the start queued: it polls nothing)")
        or diag explain $r->{json};
    $run{$name} = $r->{json}{data}{run}{id};
}
@list = ($pipe{ends}, $pipe{vanishes});
beating { (grep { run_row($run{$_})->{status} eq 'running' } keys %run) == 2 } 20, 'both runs are running (listed)';
ok(run_row($run{ends})->{last_listed_at}, 'the beat that lists a run records when (last_listed_at)');
beat_for($TIMEOUT + 1);    # both running for longer than the timeout: the old rule failed them at the next beat
is(run_row($run{$_})->{status}, 'running', "$_: still running while listed") for sort keys %run;

# ---- unlisted for less than the timeout: not failed ---------------------------------------------
@list = ();
# two beats, each seen by hbmon (marked by cpu_usage): the first was reconciled before the second was read
for my $mark (51.5, 52.5) {
    $cpu = $mark;
    beating { stored_cpu() == $mark } 20, "an unlisting beat (cpu_usage $mark) was read by hbmon";
}
my $u = $s->sql('SELECT status, TIMESTAMPDIFF(MICROSECOND, last_listed_at, NOW(3)) DIV 1000 AS ms FROM pipeline_runs WHERE id = ?',
    $run{ends})->[0];
is($u->{status}, 'running', "a run unlisted for $u->{ms} ms (< ${TIMEOUT}000) is not failed");
cmp_ok($u->{ms}, '<', $TIMEOUT * 1000, 'the run was unlisted for less than the timeout at that check') if $u->{ms} >= 0;
is(run_row($run{vanishes})->{status}, 'running', 'neither is the other one yet');

# ---- an event arriving then ends the run with its own status -------------------------------------
$s->redis('PUBLISH', 'pipeline:events', encode_json({ type => 'run_status', agent_id => $ID, pipeline_id => $pipe{ends},
    run_id => $run{ends}, status => 'completed', processed_count => 9, error_count => 0 }));
beating { run_row($run{ends})->{status} ne 'running' } 20, 'the completed event settles the run';
my $e = run_row($run{ends});
is($e->{status}, 'completed', 'with its own status: completed, not failed');
is($e->{error_message}, undef, 'and no error message');

# ---- unlisted for longer than the timeout: failed, with the reason ------------------------------
beating { run_row($run{vanishes})->{status} ne 'running' } 4 * $TIMEOUT, 'the run unlisted past the timeout is settled';
my $v = $s->sql(q{SELECT status, error_message, TIMESTAMPDIFF(MICROSECOND, last_listed_at, ended_at) DIV 1000 AS ms
    FROM pipeline_runs WHERE id = ?}, $run{vanishes})->[0];
is($v->{status}, 'failed', 'failed');
like($v->{error_message}, qr/agent t77-a no longer reports the pipeline in its heartbeats/, 'with the reason');
cmp_ok($v->{ms}, '>=', $TIMEOUT * 1000, "after being unlisted for the timeout or longer ($v->{ms} ms)");
is(($s->sql('SELECT status FROM agents WHERE id = ?', $ID)->[0] // {})->{status}, 'online', 'the agent itself stayed online');

is($s->stop, 0, 'server stops cleanly');
done_testing;
