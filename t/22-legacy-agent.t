# 22-legacy-agent.t -- agents that never acknowledge: the run follows the heartbeats' pipelines list
# (pending -> running, stopped once absent after a stop), the command is redelivered with the same id
# and a growing attempt number until commands.ttl, then expired, without failing the run; a pending
# run whose start expired and that the agent never lists fails. Also the REST fallback of commands:
# GET /agents/:id/commands and POST .../ack (roles, repeated acks, validation, success:false).
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;

my $s = CxAgent::server('commands.ttl' => '4s');

my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't22-oper');
my $r;

sub cmd_row($id) { $s->sql('SELECT status, attempts, acked_at FROM agent_commands WHERE id = ?', $id)->[0] }

# ---- a legacy agent: heartbeats and the command channel, no acknowledgements ----
my $leg = CxAgent->new(id => 't22-legacy', ack => 'none', beat => 1)->start;
ok($leg->wait_online($s), 'legacy agent online');
my $p = CxAgent::create_pipeline($s, 'legacy-one');
$r = $s->post("$P/$p->{id}/start", undef, token => $oper);
is($r->{status}, 200, 'start: 200') or diag $r->{content};
my $cid = $r->{json}{data}{command}{id};
my $run_id = $r->{json}{data}{run}{id};
wait_ok { (CxAgent::run_status($s, $p->{id}) // '') eq 'running' } 15,
    'the run follows the heartbeat: pending -> running without an ack';
is(cmd_row($cid)->{status}, 'sent', 'the command is still unacknowledged');

wait_ok { grep { $_->{msg}{attempt} >= 3 } $leg->commands_of($cid) } 15, 'redelivered (attempt 3 seen)';
wait_ok { cmd_row($cid)->{status} eq 'expired' } 15, 'the command expires after commands.ttl';
my @got = $leg->commands_of($cid);
my @attempts = map { $_->{msg}{attempt} } @got;
is_deeply(\@attempts, [1 .. scalar @attempts], 'attempts 1, 2, 3 … in order, none twice') or diag "@attempts";
cmp_ok(scalar @attempts, '>=', 3, 'several deliveries');
cmp_ok(scalar @attempts, '<=', 6, 'about one per redeliver_interval within the ttl');
is(scalar(keys %{ { map { $_->{msg}{id} => 1 } @got } }), 1, 'the same command id every time');
ok((!grep { $_->{msg}{type} ne 'start_pipeline' } @got), 'the same command');
my $n = scalar @got;
sleep 2;    # nothing more may arrive once expired
is(scalar($leg->commands_of($cid)), $n, 'no delivery after expiry');
is(CxAgent::run_status($s, $p->{id}), 'running', 'an expired start does not fail a run the agent reports');
like($s->get('/metrics')->{content}, qr/^conduix_commands_expired_total [1-9]/m, 'expired counter');
like($s->get('/metrics')->{content}, qr/^conduix_commands_redelivered_total [1-9]/m, 'redelivered counter');

# pause with no ack: a second pause waits for the first
$r = $s->post("$P/$p->{id}/pause", undef, token => $oper);
is($r->{status}, 200, 'pause: 200');
my $pause_id = $r->{json}{data}{command}{id};
wait_ok { (CxAgent::run_status($s, $p->{id}) // '') eq 'paused' } 15, 'pipeline_stats status paused -> run paused';
$r = $s->post("$P/$p->{id}/resume", undef, token => $oper);
is($r->{status}, 200, 'resume once the run is paused, though the pause was never acknowledged') or diag $r->{content};
$r = $s->post("$P/$p->{id}/resume", undef, token => $oper);
is($r->{status}, 409, 'a second resume while the first is unacknowledged: 409');
is($r->{json}{code}, 'INVALID_STATE', 'INVALID_STATE');
wait_ok { (CxAgent::run_status($s, $p->{id}) // '') eq 'running' } 15, 'run running again (heartbeat)';
isnt(cmd_row($pause_id)->{status}, 'acked', 'the pause was never acknowledged');

# stop: the agent drops the pipeline from its heartbeats
$r = $s->post("$P/$p->{id}/stop", undef, token => $oper);
is($r->{status}, 200, 'stop: 200');
$r = $s->post("$P/$p->{id}/stop", undef, token => $oper);
is($r->{status}, 409, 'a second stop while the first is unacknowledged: 409');
like($r->{json}{error}, qr/stopping/, '"pipeline is stopping"');
wait_ok { (CxAgent::run_status($s, $p->{id}) // '') eq 'stopped' } 15,
    'absent from the heartbeat after a stop: stopped';
my $h = $s->get("$P/$p->{id}/history", token => $oper)->{json}{data};
is($h->[0]{status}, 'stopped', 'history shows the run stopped');

# ---- REST fallback: an agent that polls ----
my $rest = CxAgent->new(id => 't22-rest', ack => 'none', beat => 1, subscribe => 0)->start;
ok($rest->wait_online($s), 'REST agent online');
my $tok = $s->token(role => 'agent', sub => 't22-rest');
my $other = $s->token(role => 'agent', sub => 't22-legacy');
my $p2 = CxAgent::create_pipeline($s, 'rest-one');
$r = $s->post("$P/$p2->{id}/start", { agent_id => 't22-rest' }, token => $oper);
is($r->{status}, 202, 'start on the REST agent: 202, nobody subscribed to hear it');
is($r->{json}{data}{command}{status}, 'queued', 'the command stays queued for polling');
is($r->{json}{data}{command}{attempts}, 0, 'no attempt number used by a publish nobody heard');
my $c2 = $r->{json}{data}{command};
# The dispatcher asks Redis who listens before it claims anything: nobody is subscribed for this agent,
# so it never publishes the command (nor flips it to sent and back under the agent's polls).
# (not scaled: the command must still be queued after it, within commands.ttl of 4 s; the dispatcher
# looks every 250 ms whatever the scale)
my @pub = CxTest::redis_monitor(2.5, qr/"PUBLISH" "agent:commands:t22-rest"/);
is(scalar @pub, 0, 'the dispatcher publishes nothing to an agent nobody listens for') or diag join("\n", @pub);
is(cmd_row($c2->{id})->{status}, 'queued', 'the command is still queued');

$r = $s->get('/api/v1/agents/t22-rest/commands', token => $tok);
is($r->{status}, 200, 'GET commands with the agent token: 200');
is(ref $r->{json}{data}, 'ARRAY', 'data is an array');
is(scalar @{ $r->{json}{data} }, 1, 'one unacknowledged command');
my $lc = $r->{json}{data}[0];
is($lc->{id}, $c2->{id}, 'the start command');
is($lc->{type}, 'start_pipeline', 'type');
is($lc->{pipeline_id}, $p2->{id}, 'pipeline_id');
is(ref $lc->{payload}, 'HASH', 'payload is an object');
is($lc->{payload}{run_id}, $r->{json}{data}[0]{run_id}, 'payload.run_id = run_id');
is($lc->{payload}{config_yaml}, $p2->{config_yaml}, 'payload.config_yaml');
ok(defined $lc->{expires_at} && defined $lc->{timestamp} && defined $lc->{attempt}, 'protocol fields');
is($lc->{status}, 'queued', 'status');
is($s->get('/api/v1/agents/t22-rest/commands', token => $other)->{status}, 403, "another agent's token: 403");
is($s->get('/api/v1/agents/t22-rest/commands', token => $oper)->{status}, 403, 'an operator: 403');
is($s->get('/api/v1/agents/t22-rest/commands', token => $s->admin_token)->{status}, 200, 'an admin: 200');
is_deeply($s->get('/api/v1/agents/nobody/commands', token => $s->admin_token)->{json}{data}, [], 'unknown agent: []');

my $A = "/api/v1/agents/t22-rest/commands/$c2->{id}/ack";
for my $case (
    [{}, 'success', 'success missing'],
    [{ success => 'yes' }, 'success', 'success not a boolean'],
    [{ success => JSON::PP::true, error => 5 }, 'error', 'error not a string'],
    [{ success => JSON::PP::true, extra => 1 }, 'extra', 'unknown field'],
    [{ success => JSON::PP::true, command_id => 'other' }, 'command_id', 'command_id not this command'],
    [{ success => JSON::PP::true, agent_id => 'other' }, 'agent_id', 'agent_id not this agent'],
    [{ success => JSON::PP::true, timestamp => 'yesterday' }, 'timestamp', 'timestamp not RFC 3339'],
) {
    $r = $s->post($A, $case->[0], token => $tok);
    is($r->{status}, 400, "ack with $case->[2]: 400");
    ok(exists $r->{json}{details}{ $case->[1] }, "details.$case->[1]") or diag $r->{content};
}
$r = $s->post($A, undef, token => $tok);
is($r->{status}, 400, 'ack without a body: 400');
is(cmd_row($c2->{id})->{status}, 'queued', 'bad acks changed nothing');
is($s->post("/api/v1/agents/t22-legacy/commands/$c2->{id}/ack", { success => JSON::PP::true }, token => $other)->{status},
    404, "acking another agent's command under one's own id: 404");
is($s->post($A, { success => JSON::PP::true }, token => $other)->{status}, 403, "another agent's token: 403");
is($s->post('/api/v1/agents/t22-rest/commands/00000000-0000-4000-8000-000000000000/ack', { success => JSON::PP::true },
    token => $tok)->{status}, 404, 'unknown command: 404');

$r = $s->post($A, { success => JSON::PP::true, message => 'started', command_id => $c2->{id}, agent_id => 't22-rest',
    timestamp => '2026-11-25T21:00:00.123456789+09:00' }, token => $tok);
is($r->{status}, 200, 'ack: 200') or diag $r->{content};
is($r->{json}{data}{status}, 'acked', 'command acked');
is($r->{json}{data}{result_message}, 'started', 'message kept');
my $acked_at = cmd_row($c2->{id})->{acked_at};
wait_ok { (CxAgent::run_status($s, $p2->{id}) // '') eq 'running' } 10, 'the REST ack makes the run running';
$r = $s->post($A, { success => JSON::PP::false, error => 'late' }, token => $tok);
is($r->{status}, 200, 'a repeated ack: 200');
is($r->{json}{data}{status}, 'acked', 'a repeated ack changes nothing');
is(cmd_row($c2->{id})->{acked_at}, $acked_at, 'acked_at unchanged');
is(CxAgent::run_status($s, $p2->{id}), 'running', 'the run unchanged');
is_deeply($s->get('/api/v1/agents/t22-rest/commands', token => $tok)->{json}{data}, [], 'nothing left to poll');
$r = $s->post("$P/$p2->{id}/stop", undef, token => $oper);
is($r->{status}, 202, 'stop: 202 (queued for polling)');
my $stop_id = $r->{json}{data}{command}{id};
# the dispatcher claims nothing for an agent nobody listens for: the first poll lists the stop
is($s->get('/api/v1/agents/t22-rest/commands', token => $tok)->{json}{data}[0]{type} // '', 'stop_pipeline',
    'the stop is polled');
is($s->post("/api/v1/agents/t22-rest/commands/$stop_id/ack", { success => JSON::PP::true }, token => $tok)->{status}, 200,
    'stop acked over REST');
is(CxAgent::run_status($s, $p2->{id}), 'stopped', 'run stopped by the REST ack');

# a start refused over REST fails the run
my $p3 = CxAgent::create_pipeline($s, 'rest-two');
$r = $s->post("$P/$p3->{id}/start", { agent_id => 't22-rest' }, token => $oper);
my $c3 = $r->{json}{data}{command}{id};
$r = $s->post("/api/v1/agents/t22-rest/commands/$c3/ack", { success => JSON::PP::false, error => 'boom' }, token => $tok);
is($r->{status}, 200, 'ack success:false: 200');
is($r->{json}{data}{status}, 'failed', 'command failed');
is(CxAgent::run_status($s, $p3->{id}), 'failed', 'run failed');
is($s->get("$P/$p3->{id}/status", token => $oper)->{json}{data}{run}{error_message}, 'boom', "with the agent's error");

# ---- a start never acknowledged and never reported: the run fails once the start expired ----
my $p4 = CxAgent::create_pipeline($s, 'never-started');
my $deaf = CxAgent->new(id => 't22-deaf', ack => 'none', beat => 1);
$deaf->start;
ok($deaf->wait_online($s), 'agent online');
$deaf->kill;    # from now on its key lives 30 s: online, but nothing listens and nothing beats
$s->redis('SET', 'agent:t22-deaf:heartbeat', encode_json({ agent_id => 't22-deaf', timestamp => '2026-11-25T21:00:00Z',
    cpu_usage => 0, memory_usage => 0, disk_usage => 0, pipelines => [] }), 'EX', 30);
$r = $s->post("$P/$p4->{id}/start", { agent_id => 't22-deaf' }, token => $oper);
is($r->{status}, 202, 'start on an agent that does not listen: 202 (queued, not delivered)');
is($r->{json}{data}{command}{status}, 'queued', 'its command is queued');
my $c4 = $r->{json}{data}{command}{id};
# keep beating without the pipeline until the start expires
my $failed = wait_until {
    $s->redis('SET', 'agent:t22-deaf:heartbeat', encode_json({ agent_id => 't22-deaf', timestamp => '2026-11-25T21:00:00Z',
        cpu_usage => 0, memory_usage => 0, disk_usage => rand(), pipelines => [] }), 'EX', 30);
    sleep 0.3;
    (CxAgent::run_status($s, $p4->{id}) // '') eq 'failed';
} 20, 'pending run failed';
ok($failed, 'a pending run whose start expired unacknowledged and unreported fails');
is(cmd_row($c4)->{status}, 'expired', 'its start expired');
like($s->get("$P/$p4->{id}/status", token => $oper)->{json}{data}{run}{error_message} // '', qr/never acknowledged/,
    'error_message says why');

is($s->stop, 0, 'server stops cleanly');
done_testing;
