# 11-heartbeat-rest.t -- the REST heartbeat fallback: an agent token for its own id writes the same Redis
# key an agent would and registers the agent; other ids, other roles and no token are refused; bad
# beats are refused with the field at fault and change nothing; with Redis stopped the beats go to
# MySQL and keep the agent online, while an agent heard only through Redis goes offline.
use v5.36;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use CxTest;
use IO::Socket::INET;

my $TIMEOUT = 3;
my $s = CxTest->new(config => { 'agents.heartbeat_timeout' => "${TIMEOUT}s", 'agents.monitor_interval' => '500ms' });
$s->start;
ok($s->wait_children, 'children up');

my %tok = map { $_ => $s->token(role => 'agent', sub => $_) } qw(rest-1 rest-2 rest-3);
my $viewer = $s->token(role => 'viewer', sub => 'v');
my $operator = $s->token(role => 'operator', sub => 'o');

sub beat_body($id, %extra) {
    return { agent_id => $id, timestamp => '2026-03-01T10:00:00.987654321-05:00', cpu_usage => 12.5, memory_usage => 0,
        disk_usage => 0, pipelines => [], hostname => "host-$id", ip_address => '10.1.2.3', version => '2.0.1',
        labels => { zone => 'eu-1' }, %extra };
}

sub post_beat($id, $token, $body = undef, %o) {
    return $s->post("/api/v1/agents/$id/heartbeat", $body // beat_body($id), token => $token, %o);
}

sub agent($id) {
    my $r = $s->auth_get("/api/v1/agents/$id");
    return $r->{status} == 200 ? $r->{json}{data} : undef;
}
sub status_of($id) { my $a = agent($id); $a ? $a->{status} : '' }

sub metric($name) {
    my $m = $s->get('/metrics')->{content};
    return $m =~ /^\Q$name\E (\d+)/m ? $1 : undef;
}

# ---- the happy path -----------------------------------------------------------------------------
my $r = post_beat('rest-1', $tok{'rest-1'});
is($r->{status}, 200, 'REST heartbeat with the agent token: 200') or diag explain $r->{json};
is($r->{json}{data}{agent_id}, 'rest-1', 'data.agent_id');
like($r->{json}{data}{received_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'data.received_at');
is($r->{json}{data}{via}, 'redis', 'written to Redis');
my $stored = $s->redis('GET', 'agent:rest-1:heartbeat');
ok($stored, 'the agent key exists');
is(decode_json($stored)->{agent_id}, 'rest-1', 'with the beat');
my $ttl = $s->redis('TTL', 'agent:rest-1:heartbeat');
ok($ttl > 25 && $ttl <= 30, "EX 30 like an agent (TTL $ttl)");
ok(agent('rest-1'), 'the agent is registered at once');
wait_ok { status_of('rest-1') eq 'online' } 10, 'and online within a monitor interval';
my $a = agent('rest-1');
is($a->{hostname}, 'host-rest-1', 'hostname stored');
is($a->{ip_address}, '10.1.2.3', 'ip_address stored');
is($a->{version}, '2.0.1', 'version stored');
is_deeply($a->{labels}, { zone => 'eu-1' }, 'labels stored');
is($a->{cpu_usage}, 12.5, 'cpu_usage stored');

my $adm = $s->auth_post('/api/v1/agents/rest-2/heartbeat', beat_body('rest-2'));
is($adm->{status}, 200, 'an admin may post a heartbeat for any agent');

# ---- who may not -----------------------------------------------------------------------------------
my $before = $s->redis('EXISTS', 'agent:rest-3:heartbeat');
$r = post_beat('rest-3', $tok{'rest-1'}, beat_body('rest-3'));
is($r->{status}, 403, "another agent's id: 403");
is($r->{json}{code}, 'FORBIDDEN', 'FORBIDDEN');
is(post_beat('rest-1', $viewer)->{status}, 403, 'a viewer: 403');
is(post_beat('rest-1', $operator)->{status}, 403, 'an operator: 403');
$r = $s->post('/api/v1/agents/rest-1/heartbeat', beat_body('rest-1'));
is($r->{status}, 401, 'no token: 401');
is($r->{json}{code}, 'UNAUTHORIZED', 'UNAUTHORIZED');
is($s->redis('EXISTS', 'agent:rest-3:heartbeat'), $before, 'the refused beat wrote nothing');
ok(!agent('rest-3'), 'and registered nothing');

# ---- bad beats: the right 4xx, nothing changed ---------------------------------------------------
my $rej0 = metric('conduix_agent_heartbeats_rejected_total') // 0;
my $row0 = $s->sql('SELECT hostname, ip_address, version, labels, cpu_usage, last_heartbeat FROM agents WHERE id = ?', 'rest-1')->[0];
my $val0 = $s->redis('GET', 'agent:rest-1:heartbeat');
my @bad = (
    ['not JSON', '{"agent_id": "rest-1", ', 400, 'INVALID_JSON', undef],
    ['wrong agent_id', beat_body('rest-2'), 400, 'VALIDATION_ERROR', 'agent_id'],
    ['no agent_id', { cpu_usage => 1 }, 400, 'VALIDATION_ERROR', 'agent_id'],
    ['an array', [1, 2], 400, 'VALIDATION_ERROR', 'body'],
    ['cpu_usage a string', beat_body('rest-1', cpu_usage => '12'), 400, 'VALIDATION_ERROR', 'cpu_usage'],
    ['pipelines not an array', beat_body('rest-1', pipelines => 'p1'), 400, 'VALIDATION_ERROR', 'pipelines'],
    ['pipelines of numbers', beat_body('rest-1', pipelines => [1]), 400, 'VALIDATION_ERROR', 'pipelines'],
    ['labels with a number', beat_body('rest-1', labels => { a => 1 }), 400, 'VALIDATION_ERROR', 'labels'],
    ['timestamp not a time', beat_body('rest-1', timestamp => 'yesterday'), 400, 'VALIDATION_ERROR', 'timestamp'],
    ['hostname too long', beat_body('rest-1', hostname => 'h' x 300), 400, 'VALIDATION_ERROR', 'hostname'],
    ['1001 pipelines', beat_body('rest-1', pipelines => [map {"p$_"} 0 .. 1000]), 400, 'VALIDATION_ERROR', 'pipelines'],
    ['a 100 KiB body', beat_body('rest-1', pad => 'x' x 100_000), 413, 'PAYLOAD_TOO_LARGE', undef],
);
for my $b (@bad) {
    my ($what, $body, $status, $code, $field) = @$b;
    my $res = post_beat('rest-1', $tok{'rest-1'}, $body);
    is($res->{status}, $status, "$what: $status");
    is($res->{json}{code}, $code, "$what: $code");
    ok(exists $res->{json}{details}{$field}, "$what: details name $field") or diag explain $res->{json} if defined $field;
}
is(post_beat('rest-1', $tok{'rest-1'}, 'agent_id=rest-1', content_type => 'text/plain')->{status}, 415, 'not JSON content: 415');
is($s->redis('GET', 'agent:rest-1:heartbeat'), $val0, 'the Redis key is unchanged');
my $row1 = $s->sql('SELECT hostname, ip_address, version, labels, cpu_usage, last_heartbeat FROM agents WHERE id = ?', 'rest-1')->[0];
delete $_->{last_heartbeat} for $row0, $row1;
is_deeply($row1, $row0, 'the agents row is unchanged');
wait_ok { (metric('conduix_agent_heartbeats_rejected_total') // 0) >= $rej0 + 10 } 10, 'rejected beats are counted';
wait_ok { grep { /rejected a heartbeat of agent rest-1 \(rest\)/ } split /\n/, $s->log } 10, 'and logged with the agent id';
is($s->get('/health')->{status}, 200, 'the server still answers');

# ---- many beats at once: one round trip to Redis for those a worker reads together ---------------
{
    my $n = 40;
    my ($b0, $c0) = (metric('conduix_redis_batches_total') // 0, metric('conduix_redis_batched_commands_total') // 0);
    my $admin = $s->admin_token;
    my @socks = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Proto => 'tcp') or die "connect: $!" } 1 .. $n;
    for my $i (0 .. $n - 1) {    # every request written before any answer is read
        my $json = encode_json(beat_body("burst-$i"));
        $socks[$i]->print("POST /api/v1/agents/burst-$i/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $admin\r\n"
                . "Content-Type: application/json\r\nContent-Length: " . length($json) . "\r\nConnection: close\r\n\r\n$json");
    }
    my @answers = map { local $/; my $sock = $_; my $t = <$sock>; close $sock; $t // '' } @socks;
    is(scalar(grep { m{^HTTP/1\.1 200 } && /"via":"redis"/ } @answers), $n, "$n beats at once: each answered 200 via Redis")
        or diag $answers[0];
    is(scalar(grep { ($s->redis('GET', "agent:burst-$_:heartbeat") // '') =~ /"agent_id":"burst-$_"/ } 0 .. $n - 1), $n,
        'each agent\'s key holds its own beat');
    wait_ok { !grep { !agent("burst-$_") } 0 .. $n - 1 } 10, 'each agent is registered';
    my ($batches, $cmds) = (metric('conduix_redis_batches_total') - $b0, metric('conduix_redis_batched_commands_total') - $c0);
    is($cmds, $n, "the $n SETs went through the batch");
    cmp_ok($batches, '<', $n, "in fewer round trips ($batches)");
}

# ---- Redis down: MySQL keeps REST agents alive ----------------------------------------------------
# redis-only is heard through its key alone; rest-1 keeps beating over REST; rest-new registers while
# Redis is down.
$s->redis('SET', 'agent:redis-only:heartbeat', '{"agent_id":"redis-only","timestamp":"2026-01-01T00:00:00Z","cpu_usage":0,"memory_usage":0,"disk_usage":0,"pipelines":[]}', 'EX', 30);
wait_ok { status_of('redis-only') eq 'online' } 10, 'redis-only online';
my $hbmon = $s->child_pid('hbmon');
$s->stop_redis;
my $tnew = $s->token(role => 'agent', sub => 'rest-new');
my ($ok, $bad_status, $via_db, $flaps) = (1, '', 0, 0);
my $t_end = time + ($TIMEOUT + 4) * $CxTest::SCALE;
while (time < $t_end) {
    for my $id ('rest-1', 'rest-new') {
        my $res = post_beat($id, $id eq 'rest-1' ? $tok{'rest-1'} : $tnew);
        if ($res->{status} != 200) { $ok = 0; $bad_status = "$res->{status} $res->{content}" }
        $via_db++ if ($res->{json}{data}{via} // '') eq 'database';
    }
    $flaps++ if status_of('rest-1') ne 'online';
    sleep 0.5;
}
ok($ok, 'REST heartbeats answer 200 while Redis is down') or diag $bad_status;
cmp_ok($via_db, '>', 4, "they went to MySQL ($via_db)");
is($flaps, 0, 'rest-1 stayed online for longer than the timeout with Redis down');
wait_ok { status_of('rest-new') eq 'online' } 10, 'an agent first seen through REST while Redis is down is online';
is(status_of('redis-only'), 'online', 'an agent heard only through Redis is not declared offline while Redis is down');
is(status_of('rest-1'), 'online', 'rest-1 still online');
my $rb = $s->sql('SELECT COUNT(*) AS n FROM agent_rest_heartbeats WHERE agent_id IN (?, ?)', 'rest-1', 'rest-new')->[0]{n};
is($rb, 2, 'the direct beats are in agent_rest_heartbeats');
is($s->child_pid('hbmon'), $hbmon, 'hbmon did not crash meanwhile');
$s->start_redis;
my $t_back = time;

wait_ok { my $res = post_beat('rest-1', $tok{'rest-1'}); ($res->{json}{data}{via} // '') eq 'redis' } 30,
    'Redis back: REST beats go to Redis again';
# Redis came back empty (no persistence): redis-only has a full timeout from now to be heard again.
wait_ok { grep { /hbmon: Redis is back/ } split /\n/, $s->log } 15, 'hbmon noticed that Redis is back';
wait_ok { status_of('redis-only') eq 'offline' } ($TIMEOUT + 10), 'a Redis-only agent still silent a timeout after the outage goes offline';
cmp_ok(time - $t_back, '>=', $TIMEOUT - 1, 'not before a whole timeout after Redis came back');
$s->redis('SET', 'agent:redis-only:heartbeat', '{"agent_id":"redis-only","pipelines":[]}', 'EX', 30);
wait_ok { status_of('redis-only') eq 'online' } 15, 'and Redis-only agents are seen again';

is($s->stop, 0, 'stop exits 0');
done_testing;
