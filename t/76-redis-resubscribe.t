# 76-redis-resubscribe.t -- after a Redis outage the dispatcher listens to the agents again as soon as
# Redis answers, not when the backoff of its subscription next allows. Its subscription to
# agent:responses:* and pipeline:events reconnected with a backoff doubling from 250 ms to 8 s: after
# 17 s down the next try came 23.75 s after the drop, about 5 s after Redis's return, while its own
# connection's breaker (cooldown 1 s here) let it publish the queued command within a second. The
# acknowledgement of that publish went to nobody (pub/sub), the command was sent again at the next
# redelivery (the agent heard it twice; one that has forgotten the id runs it twice: chaos scenario 3's
# duplicates) and was acknowledged 6 s after the return. Now a PING that gets through the breaker
# subscribes at once, and the dispatcher publishes nothing until it listens again (a publish before the
# subscription came back had its ack lost, at load, and was heard twice): acknowledged within a second or
# so (bound 4 s), heard once.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use CxChaos ();
use Time::HiRes qw(time sleep);

my $OUTAGE = 17;
# redeliveries 5 s apart: an ack the dispatcher hears is never beaten by a redelivery, however slow the machine
my $s = CxAgent::server(workers => 2, 'agents.heartbeat_timeout' => '60s', 'commands.redeliver_interval' => '5s');
my $oper = $s->token(role => 'operator', sub => 't76-oper');
my $ag = CxAgent->new(id => 't76-agent', ack => 'all', beat => 1)->start;
ok($ag->wait_online($s), 'agent online');

for my $round (1, 2) {
    my $p = CxAgent::create_pipeline($s, "t76-$round");
    $s->stop_redis;
    my $r = $s->post("/api/v1/pipelines/$p->{id}/start", undef, token => $oper);
    is($r->{status}, 202, "round $round: a start queued with Redis stopped");
    my $cid = $r->{json}{data}{command}{id};
    sleep $OUTAGE;
    $s->start_redis;
    my $back = time;
    wait_ok { ($s->sql('SELECT status FROM agent_commands WHERE id = ?', $cid)->[0]{status} // '') eq 'acked' } 30,
        "round $round: acknowledged after Redis returned";
    my $acked = time - $back;
    cmp_ok($acked, '<', 4 * $CxTest::SCALE, sprintf("round $round: delivered and acknowledged %.1f s after Redis returned", $acked));
    is(scalar(my @heard = $ag->commands_of($cid)), 1, "round $round: the agent heard it once (nothing sent again)");
    my ($sub) = grep { $_ > $back - 1 } map { CxChaos::unix_time($_->{time}) }
        grep { ($_->{proc} // '') eq 'dispatcher' && ($_->{msg} // '') =~ /^redis: subscribed again/ } $s->log_lines;
    ok(defined $sub && $sub - $back < 4 * $CxTest::SCALE, "round $round: the dispatcher subscribed again"
        . (defined $sub ? sprintf(' %.1f s after', $sub - $back) : ''));
}
is($s->stop, 0, 'stop exits 0');
done_testing;
