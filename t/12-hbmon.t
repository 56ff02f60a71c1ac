# 12-hbmon.t -- hbmon against garbage and crowds: bad values written straight into heartbeat keys change
# nothing and crash nothing (and the same key recovers with a good beat); the agent simulator drives
# 50 agents online and then offline with --stop-beating-after, legacy agents, REST agents with minted
# tokens, and a crashing simulator.
use v5.36;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use CxTest;

my $TIMEOUT = 3;
my $s = CxTest->new(config => { 'agents.heartbeat_timeout' => "${TIMEOUT}s", 'agents.monitor_interval' => '500ms' });
$s->start;
ok($s->wait_children, 'children up');
my $SIM = "$CxTest::BUILDDIR/src/conduix-agent-sim";
ok(-x $SIM, "the simulator is built ($SIM)");

sub metric($name) {
    my $m = $s->get('/metrics')->{content};
    return $m =~ /^\Q$name\E (\d+)/m ? $1 : undef;
}

sub status_of($id) {
    my $r = $s->auth_get("/api/v1/agents/$id");
    return $r->{status} == 200 ? $r->{json}{data}{status} : '';
}

# count_status -- how many agents whose id starts with prefix have status.
sub count_status($prefix, $status) {
    return $s->sql('SELECT COUNT(*) AS n FROM agents WHERE id LIKE ? AND status = ?', "$prefix%", $status)->[0]{n};
}

sub sim(@args) {
    return CxTest::run_cmd({ background => 1, tmp => $s->tmp }, $SIM, '-p', $CxTest::REDIS_PORT, '-q', @args);
}

# ---- garbage in the keys ----------------------------------------------------------------------------
my $hbmon = $s->child_pid('hbmon');
my $rej0 = metric('conduix_agent_heartbeats_rejected_total') // 0;
my %garbage = (
    'agent:bad-1:heartbeat' => 'not json at all',
    'agent:bad-2:heartbeat' => '{"agent_id":"someone-else","pipelines":[]}',
    'agent:bad-3:heartbeat' => '{"agent_id":"bad-3","cpu_usage":"high","pipelines":[]}',
    'agent:bad-4:heartbeat' => '{"agent_id":"bad-4","pipelines":"p1"}',
    'agent:bad-5:heartbeat' => '{"agent_id":"bad-5","labels":{"a":[1]}}',
    'agent:bad-6:heartbeat' => '["agent_id","bad-6"]',
    'agent:bad-7:heartbeat' => '{"agent_id":"bad-7","pad":"' . ('x' x 100_000) . '"}',
    'agent:bad-8:heartbeat' => "{\"agent_id\":\"bad-8\",\"hostname\":\"\xff\xfe\"}",
    'agent::heartbeat' => '{"agent_id":"","pipelines":[]}',
    'agent:bad 9:heartbeat' => '{"agent_id":"bad 9","pipelines":[]}',
);
$s->redis('SET', $_, $garbage{$_}, 'EX', 30) for sort keys %garbage;
$s->redis('HSET', 'agent:bad-10:heartbeat', 'agent_id', 'bad-10');
$s->redis('EXPIRE', 'agent:bad-10:heartbeat', 30);
$s->redis('SET', 'agent:bad-11:heartbeat', '{"agent_id":"bad-11","pipelines":{}}');    # no TTL at all
wait_ok { (metric('conduix_agent_heartbeats_rejected_total') // 0) >= $rej0 + 12 } 15, 'every garbage value is counted as rejected';
sleep 1.5;    # a few more ticks: each bad write must be counted once, not once per tick
is((metric('conduix_agent_heartbeats_rejected_total') // 0) - $rej0, 12, 'once per write, not once per tick');
is($s->sql(q{SELECT COUNT(*) AS n FROM agents WHERE id LIKE 'bad%' OR id = ''})->[0]{n}, 0, 'none of them is in the registry');
is($s->child_pid('hbmon'), $hbmon, 'hbmon did not crash');
is($s->get('/health')->{status}, 200, 'the server answers');
my @lines = grep { /rejected a heartbeat of agent bad-1 \(redis\)/ } split /\n/, $s->log;
ok(@lines, 'the rejection is logged with the agent id') or diag $s->log_tail(20);

# the same key with a good beat recovers
$s->redis('SET', 'agent:bad-1:heartbeat', '{"agent_id":"bad-1","timestamp":"2026-01-01T00:00:00.5Z","cpu_usage":0,"memory_usage":0,"disk_usage":0,"pipelines":[]}', 'EX', 30);
wait_ok { status_of('bad-1') eq 'online' } 10, 'a good beat in a key that held garbage is accepted';

# a flood of garbage is logged at a bounded rate
my $logged0 = () = grep { /rejected a heartbeat/ && /hbmon/ } split /\n/, $s->log;
$s->redis('SET', "agent:flood-$_:heartbeat", 'garbage', 'EX', 30) for 1 .. 60;
wait_ok { (metric('conduix_agent_heartbeats_rejected_total') // 0) >= $rej0 + 72 } 15, '60 more rejections counted';
my $logged1 = () = grep { /rejected a heartbeat/ && /hbmon/ } split /\n/, $s->log;
cmp_ok($logged1 - $logged0, '<=', 40, 'but at most 20 log lines per 10 s (the flood may straddle two windows)');
is($s->child_pid('hbmon'), $hbmon, 'hbmon still the same process');

# ---- 50 simulated agents: online, then offline when they stop beating ------------------------------
my $log = $s->tmp . '/sim50.log';
my $beats = $s->tmp . '/sim50.beats';
my $h = sim('-n', 50, '--prefix', 'sim50-', '-i', 1, '--stop-beating-after', 6, '--duration', 30, '--log', $log,
    '--beats-file', $beats);
wait_ok { count_status('sim50-', 'online') == 50 } 15, '50 simulated agents online';
my $ag = $s->auth_get("/api/v1/agents/sim50-0007")->{json}{data};
is($ag->{hostname}, 'host-sim50-0007', 'the simulator reports a hostname');
is($ag->{version}, 'sim-1.0', 'and a version');
is_deeply($ag->{labels}, { simulated => 'true' }, 'and labels');
wait_ok { -s $beats } 15, 'the simulator stopped beating and wrote its last beats';
wait_ok { count_status('sim50-', 'offline') == 50 } $TIMEOUT + 10, 'all 50 offline after the timeout';
my %last = map { my $o = decode_json($_); ($o->{agent_id} => $o->{last_beat_ms}) } split /\n/, CxTest::slurp($beats);
is(scalar keys %last, 50, '50 last beats');
my $rows = $s->sql(q{SELECT a.id, CAST(ROUND(UNIX_TIMESTAMP(t.`at`) * 1000) AS SIGNED) AS at_ms FROM agents a
    JOIN agent_status_transitions t ON t.agent_id = a.id AND t.to_status = 'offline' WHERE a.id LIKE 'sim50-%'});
is(scalar @$rows, 50, 'one offline transition each');
my @lag = sort { $a <=> $b } map { $_->{at_ms} - ($last{ $_->{id} } + $TIMEOUT * 1000) } @$rows;
cmp_ok($lag[0], '>=', -100, "none before the timeout (min lag $lag[0] ms)");
cmp_ok($lag[-1], '<', 2500 * $CxTest::SCALE, "all within timeout + a few intervals (max lag $lag[-1] ms)");
kill 'TERM', $h->{pid};
is(CxTest::finish_cmd($h, 20)->{exit}, 0, 'the simulator exits 0');

# ---- legacy agents -------------------------------------------------------------------------------
$h = sim('-n', 3, '--prefix', 'legacy-', '-i', 1, '--legacy');
wait_ok { count_status('legacy-', 'online') == 3 } 15, 'legacy simulated agents online';
my $v = decode_json($s->redis('GET', 'agent:legacy-0001:heartbeat'));
is_deeply([sort keys %$v], [sort qw(agent_id timestamp cpu_usage memory_usage disk_usage pipelines)], 'the original shape');
like($v->{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/, 'RFC 3339 with nanoseconds');
kill 'TERM', $h->{pid};
CxTest::finish_cmd($h, 20);

# ---- REST agents, tokens minted by the simulator ------------------------------------------------
$h = sim('-n', 3, '--prefix', 'restsim-', '-i', 1, '--rest', $s->base_url, '--jwt-secret', $s->secret, '--no-subscribe');
wait_ok { count_status('restsim-', 'online') == 3 } 15, 'REST simulated agents online';
cmp_ok(metric('conduix_agent_heartbeats_total{source="rest"}'), '>=', 3, 'REST heartbeats counted');
kill 'TERM', $h->{pid};
my $res = CxTest::finish_cmd($h, 20);
is($res->{exit}, 0, 'exits 0');

# ---- a crashing simulator --------------------------------------------------------------------------
$h = sim('-n', 5, '--prefix', 'crash-', '-i', 1, '--crash-after', 2);
$res = CxTest::finish_cmd($h, 20);
isnt($res->{exit}, 0, 'the simulator crashed (exit ' . $res->{exit} . ')');
is($s->sql(q{SELECT COUNT(*) AS n FROM agent_status_transitions WHERE agent_id LIKE 'crash-%' AND to_status = 'online'})->[0]{n},
    5, 'its agents had come online');
wait_ok { count_status('crash-', 'offline') == 5 } $TIMEOUT + 10, 'and go offline after the crash';

is($s->child_pid('hbmon'), $hbmon, 'one hbmon all along');
is($s->stop, 0, 'stop exits 0');
done_testing;
