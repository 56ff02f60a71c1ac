# 78-dispatcher-batch.t -- the dispatcher applies the acknowledgements and run events of one read of its
# subscription in batches (a transaction per up to 100), as one by one would: many acks and events
# written to Redis in one go (so they reach the dispatcher together) each take effect; two events of
# one run keep their order (running then paused ends paused, paused then running ends running); a
# repeated ack changes nothing and is not counted again; an ack on another agent's channel and an event
# naming another agent are refused and counted, changing nothing; the runs' counts follow the events;
# a run ended by an event has its outstanding commands cancelled.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;
use IO::Socket::INET;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);

# heartbeats are not what is tested: one beat keeps the agent online for the whole test, and no later
# beat reconciles the runs
my $s = CxAgent::server('agents.heartbeat_timeout' => '120s');
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't78-oper');
my $ID = 't78-a';
my $N = 40;

sub metric($name) { $s->get('/metrics')->{content} =~ /^\Q$name\E (\d+)/m ? $1 : 0 }
sub run_row($id) { $s->sql('SELECT status, processed_count, error_count, error_message FROM pipeline_runs WHERE id = ?', $id)->[0] }
sub cmd_status($id) { $s->sql('SELECT status FROM agent_commands WHERE id = ?', $id)->[0]{status} }

# burst -- every [channel, message] PUBLISHed in one write on one connection: the dispatcher's
# subscription gets them back to back.
sub burst(@msgs) {
    my $r = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $CxTest::REDIS_PORT, Proto => 'tcp', Timeout => 5)
        or die "redis: $!";
    my $req = join '', map {
        my @c = ('PUBLISH', $_->[0], ref $_->[1] ? encode_json($_->[1]) : $_->[1]);
        '*' . @c . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @c)
    } @msgs;
    print {$r} $req;
    my $got = '';
    while (($got =~ tr/\n//) < @msgs) { sysread($r, $got, 65536, length $got) or last }
    close $r;
}

my $ts = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime);
my $tok = $s->token(role => 'agent', sub => $ID);
is($s->post("/api/v1/agents/$ID/heartbeat", { agent_id => $ID, timestamp => $ts, pipelines => [] }, token => $tok)->{status},
    200, 'one REST heartbeat');
wait_ok { (($s->sql('SELECT status FROM agents WHERE id = ?', $ID)->[0] // {})->{status} // '') eq 'online' } 20,
    'the agent is online';

my (@pipes, @runs, @starts);
for my $i (0 .. $N + 2) {
    my $p = CxAgent::create_pipeline($s, "t78-$i")->{id};
    my $r = $s->post("$P/$p/start", { agent_id => $ID }, token => $oper);
    die "start $i: $r->{status}" unless $r->{status} == 200 || $r->{status} == 202;
    push @pipes, $p;
    push @runs, $r->{json}{data}{run}{id};
    push @starts, $r->{json}{data}{command}{id};
}
is(scalar(grep { run_row($_)->{status} eq 'pending' } @runs), $N + 3, ($N + 3) . ' runs pending, their starts queued');

# ---- many acks and events in one go ------------------------------------------------------------
my $acked0 = metric('conduix_commands_acked_total');
my $rej_ack0 = metric('conduix_agent_messages_rejected_total{kind="ack"}');
my $rej_ev0 = metric('conduix_agent_messages_rejected_total{kind="event"}');
my @m;
push @m, ["agent:responses:$ID", { command_id => $starts[$_], success => JSON::PP::true }] for 0 .. $N - 1;
push @m, ["agent:responses:$ID", { command_id => $starts[0], success => JSON::PP::true }];    # repeated
push @m, ['agent:responses:t78-other', { command_id => $starts[$N], success => JSON::PP::true }];    # not its command
push @m, ['pipeline:events', { type => 'run_status', agent_id => 't78-other', run_id => $runs[$N], status => 'running' }];
push @m, ['pipeline:events', { type => 'run_status', agent_id => $ID, pipeline_id => $pipes[$_], run_id => $runs[$_],
    status => 'running', processed_count => 100 + $_, error_count => $_ % 3 }] for 0 .. $N - 1;
push @m, ['pipeline:events', { type => 'run_status', agent_id => $ID, run_id => $runs[$_], status => 'completed',
    processed_count => 1000 + $_ }] for 0 .. 9;
# the order of two events of one run within the read
push @m, ['pipeline:events', { type => 'run_status', agent_id => $ID, run_id => $runs[$N + 1], status => $_ }] for qw(running paused);
push @m, ['pipeline:events', { type => 'run_status', agent_id => $ID, run_id => $runs[$N + 2], status => $_ }] for qw(paused running);
burst(@m);

wait_ok { (grep { cmd_status($_) eq 'acked' } @starts[0 .. $N - 1]) == $N } 30, "the $N starts acknowledged";
wait_ok { run_row($runs[$N + 2])->{status} eq 'running' } 30, 'paused then running: running (the later word stands)';
is(run_row($runs[$N + 1])->{status}, 'paused', 'running then paused: paused');
wait_ok { (grep { run_row($runs[$_])->{status} eq 'completed' } 0 .. 9) == 10 } 30, 'ten runs completed by their events';
is(scalar(grep { run_row($runs[$_])->{status} eq 'running' } 10 .. $N - 1), $N - 10, 'the others running');
my @bad = grep { my $r = run_row($runs[$_]); $r->{processed_count} != ($_ < 10 ? 1000 + $_ : 100 + $_) || $r->{error_count} != $_ % 3 }
    0 .. $N - 1;
is("@bad", '', "every run has its event's counts (the completed ones the last event's processed_count)");
is(metric('conduix_commands_acked_total') - $acked0, $N, "$N acknowledgements counted: the repeated one is not");
wait_ok { metric('conduix_agent_messages_rejected_total{kind="ack"}') - $rej_ack0 == 1 } 10,
    "the ack on another agent's channel is refused and counted";
is(cmd_status($starts[$N]), 'queued', 'and its command is untouched');
wait_ok { metric('conduix_agent_messages_rejected_total{kind="event"}') - $rej_ev0 == 1 } 10,
    'the event naming another agent is refused and counted';
is(run_row($runs[$N])->{status}, 'pending', 'and its run is untouched');

# ---- an ending event cancels the run's outstanding commands ----------------------------------
my $r = $s->post("$P/$pipes[$N + 1]/resume", undef, token => $oper);
ok($r->{status} == 200 || $r->{status} == 202, 'resume the paused run (the command queued)') or diag explain $r->{json};
my $resume = $r->{json}{data}{command}{id};
my $cancelled0 = metric('conduix_commands_cancelled_total');
burst(['pipeline:events', { type => 'run_status', agent_id => $ID, run_id => $runs[$N + 1], status => 'failed',
    error_message => 'disk full' }], ["agent:responses:$ID", { command_id => $starts[$N + 1], success => JSON::PP::true }]);
wait_ok { run_row($runs[$N + 1])->{status} eq 'failed' } 30, 'the failed event ends the paused run';
is(run_row($runs[$N + 1])->{error_message}, 'disk full', 'with its error_message');
is(cmd_status($resume), 'cancelled', 'its queued resume is cancelled');
wait_ok { cmd_status($starts[$N + 1]) eq 'acked' } 30, 'the late ack of its start is recorded';
is(run_row($runs[$N + 1])->{status}, 'failed', 'and changes nothing of the ended run');
cmp_ok(metric('conduix_commands_cancelled_total') - $cancelled0, '>=', 1, 'the cancellation is counted');

# ---- the words of several runs interleaved, as agents send them: each run's in their order ----------
# ack, running, paused (and running again for the even ones), round-robin over eight runs in one write: a
# batch passes over a word about a run already in it and takes the next run's, never a later word of the
# same run before an earlier one (paused before running would be refused from pending, running after
# paused would end the odd ones running)
my $K = 8;
my (@ip, @ir, @is);
for my $i (0 .. $K - 1) {
    my $p = CxAgent::create_pipeline($s, "t78-i$i")->{id};
    my $r = $s->post("$P/$p/start", { agent_id => $ID }, token => $oper);
    die "start i$i: $r->{status}" unless $r->{status} == 200 || $r->{status} == 202;
    push @ip, $p;
    push @ir, $r->{json}{data}{run}{id};
    push @is, $r->{json}{data}{command}{id};
}
my @steps = (sub ($i) { ["agent:responses:$ID", { command_id => $is[$i], success => JSON::PP::true }] },
    map { my $st = $_; sub ($i) { ['pipeline:events', { type => 'run_status', agent_id => $ID, run_id => $ir[$i], status => $st,
        processed_count => 10 + $i }] } } qw(running paused running));
my @il;
for my $k (0 .. $#steps) {
    push @il, $steps[$k]->($_) for grep { $k < 3 || $_ % 2 == 0 } 0 .. $K - 1;
}
burst(@il);
wait_ok { (grep { cmd_status($_) eq 'acked' } @is) == $K } 30, "the $K interleaved starts acknowledged";
wait_ok { (grep { run_row($ir[$_])->{status} eq ($_ % 2 ? 'paused' : 'running') } 0 .. $K - 1) == $K } 30,
    'each interleaved run ends as its last word says (even: running again, odd: paused)';
is(scalar(grep { run_row($ir[$_])->{processed_count} == 10 + $_ } 0 .. $K - 1), $K, 'with its own counts');

is($s->stop, 0, 'server stops cleanly');
done_testing;
