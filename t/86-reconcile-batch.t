# 86-reconcile-batch.t -- the heartbeat reconciliation of an agent with several active runs of every
# kind at once: the runs a beat lists have last_listed_at and their counts written together (those with
# pipeline_stats counts, and one listed without stats), a pending run whose start_pipeline expired is
# failed, a run whose stop was asked and that the beat no longer lists is stopped, and what one beat
# says of each run is what happens to that run, not to another. The agent beats over REST, so the test
# says exactly what each beat lists (it polls nothing: its commands stay queued, then expire).
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use Time::HiRes qw(time sleep);

my $TTL = 4;    # commands.ttl: the pending run's start expires after this
my $s = CxAgent::server('agents.heartbeat_timeout' => '20s', 'commands.ttl' => "${TTL}s");
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't86-oper');
my $ID = 't86-a';
my $tok = $s->token(role => 'agent', sub => $ID);
my (@list, %counts);
# Each beat lists @list, with pipeline_stats for the pipelines of %counts.
my $rest = CxAgent::Rest->new($s, $ID, $tok, sub {
    (pipelines => [@list], pipeline_stats => [map { { pipeline_id => $_, status => 'running', processed_count => $counts{$_},
        error_count => 1 } } grep { exists $counts{$_} } @list]);
});
sub beating : prototype(&$$) {
    my ($code, $timeout, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return $rest->await($code, $timeout, $name);
}
sub run_row($id) {
    $s->sql('SELECT status, error_message, processed_count, error_count, last_listed_at FROM pipeline_runs WHERE id = ?', $id)
        ->[0];
}

beating { (($s->sql('SELECT status FROM agents WHERE id = ?', $ID)->[0] // {})->{status} // '') eq 'online' } 20,
    'the REST agent is online';
my (%pipe, %run);
my @names = qw(counted1 counted2 plain pending stopped);
for my $name (@names) {
    $pipe{$name} = CxAgent::create_pipeline($s, "t86-$name")->{id};
    my $r = $s->post("$P/$pipe{$name}/start", { agent_id => $ID }, token => $oper);
    ok($r->{status} == 200 || $r->{status} == 202, "start $name on the agent") or diag explain $r->{json};
    $run{$name} = $r->{json}{data}{run}{id};
}

# ---- one beat lists four of the five runs: three with counts, one without ------------------------
@list = map { $pipe{$_} } qw(counted1 counted2 plain stopped);
%counts = ($pipe{counted1} => 11, $pipe{counted2} => 12, $pipe{stopped} => 13);
beating { (grep { run_row($run{$_})->{status} eq 'running' } qw(counted1 counted2 plain stopped)) == 4 } 20,
    'the four listed runs are running';
is(run_row($run{counted1})->{processed_count}, 11, 'counted1: its processed_count from the beat');
is(run_row($run{counted2})->{processed_count}, 12, 'counted2: its own, not the other one\'s');
is(run_row($run{counted2})->{error_count}, 1, 'and its error_count');
my $plain = run_row($run{plain});
is($plain->{processed_count}, 0, 'plain (listed without stats): counts untouched');
ok($plain->{last_listed_at}, 'but its last_listed_at recorded');
ok(run_row($run{$_})->{last_listed_at}, "$_: last_listed_at recorded") for qw(counted1 counted2 stopped);
is(run_row($run{pending})->{last_listed_at}, undef, 'the unlisted run has none');

# ---- the unlisted pending run fails once its start expired, the others are left alone -----------
beating { run_row($run{pending})->{status} ne 'pending' } 6 * $TTL, 'the pending run is settled once its start expired';
my $pend = run_row($run{pending});
is($pend->{status}, 'failed', 'failed');
like($pend->{error_message}, qr/agent t86-a never acknowledged start_pipeline nor reported the pipeline running/,
    'with the reason');
is(run_row($run{$_})->{status}, 'running', "$_: still running") for qw(counted1 counted2 plain stopped);

# ---- a stop asked, then a beat that unlists that run and carries new counts for the others -------
my $r = $s->post("$P/$pipe{stopped}/stop", {}, token => $oper);
ok($r->{status} == 200 || $r->{status} == 202, 'stop asked (queued: the agent polls nothing)') or diag explain $r->{json};
@list = map { $pipe{$_} } qw(counted1 counted2 plain);
%counts = ($pipe{counted1} => 21, $pipe{counted2} => 22);
beating { run_row($run{stopped})->{status} ne 'running' && run_row($run{counted2})->{processed_count} == 22 } 20,
    'the unlisted run with a stop asked is settled, and the new counts written';
is(run_row($run{stopped})->{status}, 'stopped', 'stopped (not failed)');
is(run_row($run{counted1})->{processed_count}, 21, 'counted1: its new count');
is(run_row($run{$_})->{status}, 'running', "$_: still running") for qw(counted1 counted2 plain);
is(run_row($run{stopped})->{processed_count}, 13, 'the stopped run kept its last listed count');

is($s->stop, 0, 'server stops cleanly');
done_testing;
