# 76-redis-resubscribe.t -- after a Redis outage the dispatcher listens to the agents again as soon as
# Redis answers, not when its subscription's backoff next allows. The subscription to agent:responses:*
# and pipeline:events reconnects with a backoff that has grown to 8 s after ten seconds down, while the
# breaker of the dispatcher's own connection (cooldown 1 s here) lets it publish again within a second:
# the acknowledgements of what it published meanwhile went to nobody (pub/sub), and the commands were sent
# again every redeliver interval until it listened, which an agent that has forgotten the id runs twice
# (chaos scenario 3's duplicates). Now the first acknowledgement is heard and nothing is sent twice.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use CxChaos ();
use Time::HiRes qw(time sleep);

my $s = CxAgent::server(workers => 2, 'agents.heartbeat_timeout' => '60s');
my $oper = $s->token(role => 'operator', sub => 't76-oper');
my $ag = CxAgent->new(id => 't76-agent', ack => 'all', beat => 1)->start;
ok($ag->wait_online($s), 'agent online');

for my $round (1, 2) {
    my $p = CxAgent::create_pipeline($s, "t76-$round");
    $s->stop_redis;
    my $r = $s->post("/api/v1/pipelines/$p->{id}/start", undef, token => $oper);
    is($r->{status}, 202, "round $round: a start queued with Redis stopped");
    my $cid = $r->{json}{data}{command}{id};
    sleep 10;
    $s->start_redis;
    my $back = time;
    wait_ok { ($s->sql('SELECT status FROM agent_commands WHERE id = ?', $cid)->[0]{status} // '') eq 'acked' } 30,
        "round $round: acknowledged after Redis returned";
    my $acked = time - $back;
    cmp_ok($acked, '<', 2 * $CxTest::SCALE, sprintf("round $round: its acknowledgement heard %.1f s after Redis returned", $acked));
    is(scalar(my @heard = $ag->commands_of($cid)), 1, "round $round: the agent heard it once (nothing sent again)");
    my ($sub) = grep { $_ > $back - 1 } map { CxChaos::unix_time($_->{time}) }
        grep { ($_->{proc} // '') eq 'dispatcher' && ($_->{msg} // '') =~ /^redis: subscribed again/ } $s->log_lines;
    ok(defined $sub && $sub - $back < 2 * $CxTest::SCALE, "round $round: the dispatcher subscribed again at once"
        . (defined $sub ? sprintf(' (%.1f s)', $sub - $back) : ''));
}
is($s->stop, 0, 'stop exits 0');
done_testing;
