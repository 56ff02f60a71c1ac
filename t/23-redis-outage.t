# 23-redis-outage.t -- commands survive a Redis outage: with Redis stopped, start answers 202 with the
# command queued; when Redis returns the agent receives it. 200 commands queued across an outage are
# all delivered, each attempt exactly once, in seq order per agent. Stops the shared Redis (CxTest
# restarts it at exit whatever happens).
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;
use Time::HiRes qw(time);

# heartbeat_timeout stays long: with Redis down no heartbeat arrives, and the agents must not go offline
# (and their runs lost) during the outage. The circuit breaker has its default cooldown of 30 s: probes
# start 250 ms after it opens and double up to the cooldown, so a short outage is over for the server
# within about a second of Redis's return (it used to wait out the whole cooldown: delivery ~28 s late).
my $s = CxAgent::server(workers => 2, 'agents.heartbeat_timeout' => '60s', 'commands.ttl' => '5m',
    'redis.circuit_breaker' => { failures => 3, cooldown => '30s', half_open_successes => 2 });

my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't23-oper');
my $r;

my @agents = map { CxAgent->new(id => "t23-agent-$_", ack => 'all', beat => 1)->start } 1 .. 2;
ok($_->wait_online($s), $_->id . ' online') for @agents;

# ---- one start across an outage ----
my $p = CxAgent::create_pipeline($s, 'outage-one');
$s->stop_redis;
$r = $s->post("$P/$p->{id}/start", undef, token => $oper);
is($r->{status}, 202, 'start with Redis stopped: 202') or diag $r->{content};
is($r->{json}{data}{command}{status}, 'queued', 'command.status queued');
is($r->{json}{data}{run}{status}, 'pending', 'run pending');
ok($r->{json}{success}, 'success true');
my $cid = $r->{json}{data}{command}{id};
my $agent = (grep { $_->id eq $r->{json}{data}{run}{agent_id} } @agents)[0];
cmp_ok($r->{elapsed}, '<', 3 * $CxTest::SCALE, 'answered without waiting on Redis');
sleep 1.5;    # the dispatcher ticks meanwhile: still queued, nothing lost
is($s->sql('SELECT status FROM agent_commands WHERE id = ?', $cid)->[0]{status}, 'queued', 'still queued while Redis is down');

$s->start_redis;
my $back = time;
wait_ok { $agent->commands_of($cid) } 30, 'Redis back: the agent receives the command';
my $lag = time - $back;
cmp_ok($lag, '<', 5 * $CxTest::SCALE, sprintf('delivered %.1f s after Redis returned, not after the 30 s cooldown', $lag));
wait_ok { (CxAgent::run_status($s, $p->{id}) // '') eq 'running' } 30, 'and acknowledges it: running';
# Published when Redis answers again: attempt 1, unless the agent had not subscribed again yet and the
# first one it hears is the redelivery.
my @att = map { $_->{msg}{attempt} } $agent->commands_of($cid);
cmp_ok($att[0], '<=', 2, 'no attempt number was used up while Redis was down') or diag "@att";
is_deeply(\@att, [sort { $a <=> $b } keys %{ { map { $_ => 1 } @att } }], 'attempts increasing, none twice');

# ---- 200 commands queued across an outage ----
my @pipes = map { CxAgent::create_pipeline($s, "outage-bulk-$_") } 1 .. 200;
my %msgs_before = map { $_->id => scalar($_->messages) } @agents;
$s->stop_redis;
my (%cmd, $codes);
my $t0 = time;
for my $pp (@pipes) {
    my $x = $s->post("$P/$pp->{id}/start", undef, token => $oper);
    $codes->{ $x->{status} }++;
    $cmd{ $x->{json}{data}{command}{id} } = $x->{json}{data}{run}{agent_id} if $x->{json}{data}{command};
}
is_deeply($codes, { 202 => 200 }, '200 starts with Redis down: all 202') or diag explain $codes;
is(scalar keys %cmd, 200, '200 commands');
is($s->sql("SELECT COUNT(*) AS n FROM agent_commands WHERE status = 'queued'")->[0]{n}, 200, '200 rows queued in MySQL');
my %per_agent;
$per_agent{$_}++ for values %cmd;
ok((keys %per_agent) == 2, 'spread over both agents (least loaded)') or diag explain \%per_agent;
note sprintf('200 starts with Redis down took %.1f s', time - $t0);

$s->start_redis;
sub received() {
    my %ids;
    for my $ag (@agents) {
        my @m = $ag->messages;
        splice(@m, 0, $msgs_before{ $ag->id });
        $ids{ $_->{msg}{id} }++ for grep { exists $cmd{ $_->{msg}{id} } } @m;
    }
    return \%ids;
}
wait_ok { keys %{ received() } == 200 } 60, 'every one of the 200 commands reached its agent';
wait_ok { $s->sql("SELECT COUNT(*) AS n FROM agent_commands WHERE status = 'acked'")->[0]{n} >= 201 } 60,
    'and every one was acknowledged';

my %seq = map { $_->{id} => $_->{seq} } @{ $s->sql('SELECT id, seq FROM agent_commands') };
for my $ag (@agents) {
    my @m = grep { exists $cmd{ $_->{msg}{id} } } $ag->messages;
    my (%seen_attempt, @dups, @wrong, %first, @order);
    for (@m) {
        my $k = "$_->{msg}{id}/$_->{msg}{attempt}";
        push @dups, $k if $seen_attempt{$k}++;
        push @wrong, $_->{msg}{id} if $cmd{ $_->{msg}{id} } ne $ag->id;
        push @order, $seq{ $_->{msg}{id} } unless $first{ $_->{msg}{id} }++;
    }
    is_deeply(\@dups, [], $ag->id . ': no command received twice with the same attempt number');
    is_deeply(\@wrong, [], $ag->id . ': only its own commands');
    is(scalar keys %first, $per_agent{ $ag->id }, $ag->id . ': all of its commands');
    is_deeply(\@order, [sort { $a <=> $b } @order], $ag->id . ': first deliveries in seq order');
}
my $runs = $s->sql("SELECT status, COUNT(*) AS n FROM pipeline_runs GROUP BY status");
is_deeply({ map { $_->{status} => $_->{n} } @$runs }, { running => 201 }, 'all 201 runs running');
wait_ok { $s->get('/metrics')->{content} =~ /^conduix_commands_pending 0$/m } 10, 'pending gauge back to 0';

is($s->stop, 0, 'server stops cleanly');
done_testing;
