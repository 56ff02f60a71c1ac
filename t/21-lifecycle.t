# 21-lifecycle.t -- a pipeline's life on an agent that acknowledges: start -> the agent receives
# start_pipeline (protocol fields, run id, config, attempt 1) -> ack -> running -> pause / resume / stop
# likewise -> history; every illegal transition is 409 INVALID_STATE, no agent is 409
# NO_AGENT_AVAILABLE, unknown pipelines are 404, bad bodies 400; a refused start (ack success:false)
# fails the run; run events from pipeline:events; status, metrics, audit rows.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;

my $s = CxAgent::server();

my $P = '/api/v1/pipelines';
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
my $TIME = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
my $oper = $s->token(role => 'operator', sub => 't21-oper', email => 'oper@example.com');
my $viewer = $s->token(role => 'viewer', sub => 't21-viewer');
my $r;

sub post_as($tok, $path, $body = undef, %h) { $s->post($path, $body, token => $tok, %h) }

my $p = CxAgent::create_pipeline($s, 'life-one');
my $pid = $p->{id};

# ---- unknown pipeline: 404 everywhere ----
my $ghost = '00000000-0000-4000-8000-000000000000';
for my $v (qw(start stop pause resume)) {
    $r = post_as($oper, "$P/$ghost/$v");
    is($r->{status}, 404, "$v of an unknown pipeline: 404");
    is($r->{json}{code}, 'NOT_FOUND', "$v: NOT_FOUND");
}
for my $v (qw(status history metrics)) {
    $r = $s->get("$P/$ghost/$v", token => $viewer);
    is($r->{status}, 404, "GET $v of an unknown pipeline: 404");
}

# ---- never ran ----
$r = $s->get("$P/$pid/status", token => $viewer);
is($r->{status}, 200, 'status 200');
is_deeply($r->{json}{data}, { pipeline_id => $pid, status => 'stopped', run => undef, agent => undef },
    'a pipeline that never ran: stopped, no run, no agent');
for my $v (qw(stop pause resume)) {
    $r = post_as($oper, "$P/$pid/$v");
    is($r->{status}, 409, "$v before any run: 409");
    is($r->{json}{code}, 'INVALID_STATE', "$v before any run: INVALID_STATE");
}

# ---- no agent online ----
$r = post_as($oper, "$P/$pid/start");
is($r->{status}, 409, 'start with no agent online: 409');
is($r->{json}{code}, 'NO_AGENT_AVAILABLE', 'NO_AGENT_AVAILABLE');
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs')->[0]{n}, 0, 'no run written');

# ---- roles and bodies ----
$r = post_as($viewer, "$P/$pid/start");
is($r->{status}, 403, 'a viewer may not start');
$r = post_as($oper, "$P/$pid/start", { agent_id => 'x', force => 1 });
is($r->{status}, 400, 'unknown field: 400');
like($r->{json}{error}, qr/force/, 'the message names the unknown field');
ok(exists $r->{json}{details}{force}, 'details name it');
$r = post_as($oper, "$P/$pid/start", { agent_id => 5 });
is($r->{status}, 400, 'agent_id not a string: 400');
ok(exists $r->{json}{details}{agent_id}, 'details.agent_id');
$r = post_as($oper, "$P/$pid/start", '[1]');
is($r->{status}, 400, 'a body that is not an object: 400');
$r = post_as($oper, "$P/$pid/stop", { reason => 'x' });
is($r->{status}, 400, 'stop takes no fields: 400');
$r = post_as($oper, "$P/$pid/start", { agent_id => 'nobody-here' });
is($r->{status}, 409, 'start on an unknown agent: 409');
is($r->{json}{code}, 'NO_AGENT_AVAILABLE', 'NO_AGENT_AVAILABLE');
like($r->{json}{error}, qr/nobody-here/, 'the message names the agent');

# ---- an agent comes online ----
my $ag = CxAgent->new(id => 't21-agent-a', ack => 'all', beat => 1)->start;
ok($ag->wait_online($s), 'agent online from its heartbeat key');

# ---- start ----
$r = post_as($oper, "$P/$pid/start", undef, 'X-Request-ID' => 't21-start-1');
is($r->{status}, 200, 'start: 200') or diag $r->{content};
my $run = $r->{json}{data}{run};
my $cmd = $r->{json}{data}{command};
like($run->{id}, $UUID, 'run id');
is($run->{pipeline_id}, $pid, 'run.pipeline_id');
is($run->{agent_id}, 't21-agent-a', 'run on the online agent');
is($run->{trigger}, 'manual', 'trigger manual');
is($run->{status}, 'pending', 'run pending until the agent acknowledges');
like($run->{created_at}, $TIME, 'run.created_at RFC 3339');
is($cmd->{type}, 'start_pipeline', 'command type');
is($cmd->{status}, 'sent', 'command sent at once');
is($cmd->{attempts}, 1, 'attempts 1');
is($cmd->{run_id}, $run->{id}, 'command.run_id');
is($cmd->{agent_id}, 't21-agent-a', 'command.agent_id');
is(ref $cmd->{payload}, 'HASH', 'command.payload is an object');
like($cmd->{expires_at}, $TIME, 'command.expires_at');

wait_ok { $ag->commands_of($cmd->{id}) } 10, 'the agent received start_pipeline';
my ($got) = $ag->commands_of($cmd->{id});
is($got->{channel}, 'agent:commands:t21-agent-a', 'on agent:commands:{id}');
my $m = $got->{msg};
is_deeply([sort keys %$m], [sort qw(id type pipeline_id payload timestamp expires_at attempt)],
    'exactly the protocol fields');
is($m->{type}, 'start_pipeline', 'type');
is($m->{pipeline_id}, $pid, 'pipeline_id');
is($m->{attempt}, 1, 'attempt 1');
is(ref $m->{payload}, 'HASH', 'payload is a JSON object, not a string');
is($m->{payload}{run_id}, $run->{id}, 'payload.run_id');
is($m->{payload}{config_yaml}, $p->{config_yaml}, 'payload.config_yaml is the pipeline config');
ok(exists $m->{payload}{checkpoint} && !defined $m->{payload}{checkpoint}, 'payload.checkpoint null');
like($m->{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'timestamp RFC 3339');
is($m->{expires_at}, $cmd->{expires_at}, 'expires_at');

wait_ok { (CxAgent::run_status($s, $pid) // '') eq 'running' } 10, 'run running after the ack';
$r = $s->get("$P/$pid/status", token => $viewer);
is($r->{json}{data}{status}, 'running', 'status running');
is($r->{json}{data}{agent}{id}, 't21-agent-a', 'status.agent');
is($r->{json}{data}{agent}{status}, 'online', 'status.agent online');
like($r->{json}{data}{run}{started_at} // '', $TIME, 'started_at set');
is($s->get("$P/$pid", token => $viewer)->{json}{data}{status}, 'running', 'GET /pipelines/:id: status running');
is((grep { $_->{id} eq $pid } @{ $s->get("$P?page_size=100", token => $viewer)->{json}{data}{items} })[0]{status}, 'running',
    'the list shows it running');
is($s->sql('SELECT status FROM agent_commands WHERE id = ?', $cmd->{id})->[0]{status}, 'acked', 'command acked');
$r = $s->get('/api/v1/agents/t21-agent-a', token => $viewer);
is_deeply([map { $_->{id} } @{ $r->{json}{data}{active_runs} // [] }], [$run->{id}], 'GET /agents/:id lists the run among its active runs');
is_deeply($r->{json}{data}{active_runs}[0], $s->get("$P/$pid/status", token => $viewer)->{json}{data}{run},
    'the same Run as /pipelines/:id/status');

# ---- illegal transitions while running ----
$r = post_as($oper, "$P/$pid/start");
is($r->{status}, 409, 'start while running: 409');
is($r->{json}{code}, 'INVALID_STATE', 'INVALID_STATE');
like($r->{json}{error}, qr/already running/, '"already running"');
$r = post_as($oper, "$P/$pid/resume");
is($r->{status}, 409, 'resume while running: 409');
is($r->{json}{code}, 'INVALID_STATE', 'INVALID_STATE');

# ---- pause / resume ----
sub control($verb, $want) {
    my $r = post_as($oper, "$P/$pid/$verb", undef, 'X-Request-ID' => "t21-$verb-1");
    is($r->{status}, 200, "$verb: 200") or diag $r->{content};
    my $c = $r->{json}{data}{command};
    is($c->{type}, "${verb}_pipeline", "$verb: command type");
    is_deeply($c->{payload}, { run_id => $run->{id} }, "$verb: payload {run_id}");
    wait_ok { $ag->commands_of($c->{id}) } 10, "the agent received ${verb}_pipeline";
    wait_ok { (CxAgent::run_status($s, $pid) // '') eq $want } 10, "run $want after the ack";
    return $c;
}
control('pause', 'paused');
$r = post_as($oper, "$P/$pid/pause");
is($r->{status}, 409, 'pause when paused: 409');
is($r->{json}{code}, 'INVALID_STATE', 'INVALID_STATE');
$r = post_as($oper, "$P/$pid/start");
is($r->{status}, 409, 'start when paused: 409');
control('resume', 'running');
control('pause', 'paused');
my $stop = control('stop', 'stopped');

$r = $s->get("$P/$pid/status", token => $viewer);
is($r->{json}{data}{status}, 'stopped', 'status stopped');
like($r->{json}{data}{run}{ended_at} // '', $TIME, 'ended_at set');
for my $v (qw(stop pause resume)) {
    $r = post_as($oper, "$P/$pid/$v");
    is($r->{status}, 409, "$v when stopped: 409");
    is($r->{json}{code}, 'INVALID_STATE', "$v when stopped: INVALID_STATE");
}
like(post_as($oper, "$P/$pid/stop")->{json}{error}, qr/not running/, '"pipeline is not running"');

# ---- a second run; history ----
$r = post_as($oper, "$P/$pid/start");
is($r->{status}, 200, 'start again after stop: 200');
my $run2 = $r->{json}{data}{run};
isnt($run2->{id}, $run->{id}, 'a new run');
wait_ok { (CxAgent::run_status($s, $pid) // '') eq 'running' } 10, 'second run running';

$r = $s->get("$P/$pid/history", token => $viewer);
is($r->{status}, 200, 'history 200');
is(ref $r->{json}{data}, 'ARRAY', 'data is an array of runs');
is_deeply([map { $_->{id} } @{ $r->{json}{data} }], [$run2->{id}, $run->{id}], 'newest first');
is($r->{json}{data}[1]{status}, 'stopped', 'the first run ended stopped');
# the agent's heartbeats move a running run's counts (and updated_at) between the two reads
{
    my %h = %{ $r->{json}{data}[0] };
    my %st = %{ $s->get("$P/$pid/status", token => $viewer)->{json}{data}{run} // {} };
    my @moving = qw(processed_count error_count updated_at);
    ok(($st{$_} // -1) >= ($h{$_} // 0), "/status's $_ is no older than the history's") for qw(processed_count error_count);
    delete @h{@moving};
    delete @st{@moving};
    is_deeply(\%h, \%st, 'the same Run as /status (but for what the heartbeats move)');
}
$r = $s->get("$P/$pid/history?status=stopped", token => $viewer);
is_deeply([map { $_->{id} } @{ $r->{json}{data} }], [$run->{id}], '?status=stopped: the first run only');
$r = $s->get("$P/$pid/history?status=failed", token => $viewer);
is($r->{status}, 200, '?status=failed: 200');
is_deeply($r->{json}{data}, [], '?status=failed: []');
$r = $s->get("$P/$pid/history?status=bogus", token => $viewer);
is($r->{status}, 400, '?status=bogus: 400');
ok(exists $r->{json}{details}{status}, 'details.status');
$r = $s->get("$P/$pid/history?limit=1", token => $viewer);
is_deeply([map { $_->{id} } @{ $r->{json}{data} }], [$run2->{id}], '?limit=1: the newest run');
$r = $s->get("$P/$pid/history?limit=1&before=$run2->{id}", token => $viewer);
is_deeply([map { $_->{id} } @{ $r->{json}{data} }], [$run->{id}], '?before=<newest>: the next slice');
$r = $s->get("$P/$pid/history?before=$run->{id}", token => $viewer);
is_deeply($r->{json}{data}, [], '?before=<oldest>: []');
for my $bad ('limit=0', 'limit=501', 'limit=x', 'limit=', 'limit=1.5') {
    $r = $s->get("$P/$pid/history?$bad", token => $viewer);
    is($r->{status}, 400, "?$bad: 400");
    ok(exists $r->{json}{details}{limit}, "?$bad: details.limit");
}
$r = $s->get("$P/$pid/history?limit=500", token => $viewer);
is($r->{status}, 200, '?limit=500: 200');
$r = $s->get("$P/$pid/history?before=not-a-run", token => $viewer);
is($r->{status}, 400, '?before=not-a-run: 400');
ok(exists $r->{json}{details}{before}, 'details.before');
$r = $s->get("$P/$pid/history?before=00000000-0000-4000-8000-00000000dead", token => $viewer);
is($r->{status}, 400, '?before=<no such run>: 400');
ok(exists $r->{json}{details}{before}, 'details.before names the parameter');

# ---- metrics: the run's counts, then Redis ----
wait_ok { $s->sql('SELECT processed_count FROM pipeline_runs WHERE id = ?', $run2->{id})->[0]{processed_count} > 0 } 10,
    'pipeline_stats counts reach the run';
$r = $s->get("$P/$pid/metrics", token => $viewer);
is($r->{status}, 200, 'metrics 200');
is($r->{json}{data}{source}, 'run', 'no Redis metrics: source run');
is($r->{json}{data}{run_id}, $run2->{id}, 'the latest run');
cmp_ok($r->{json}{data}{processed_count}, '>', 0, 'processed_count from the heartbeats');
$s->redis('SET', "pipeline:$pid:metrics", encode_json({ pipeline_id => $pid, events_in => 10, events_out => 9,
    bytes_in => 100, bytes_out => 90, errors_total => 1, processing_time_ms => 5, last_updated => '2026-11-25T21:00:00Z' }));
$r = $s->get("$P/$pid/metrics", token => $viewer);
is($r->{json}{data}{source}, 'redis', 'source redis');
is($r->{json}{data}{events_in}, 10, 'events_in from Redis');
is($r->{json}{data}{errors_total}, 1, 'errors_total from Redis');

# ---- run events on pipeline:events ----
$s->redis('PUBLISH', 'pipeline:events', encode_json({ type => 'run_status', agent_id => 't21-agent-a',
    pipeline_id => $pid, run_id => $run2->{id}, status => 'running', processed_count => 123456, error_count => 3,
    timestamp => '2026-11-25T21:00:00.5+01:00' }));
wait_ok { $s->sql('SELECT processed_count FROM pipeline_runs WHERE id = ?', $run2->{id})->[0]{processed_count} >= 123456 }
    10, 'a run event sets the counts';
$s->redis('PUBLISH', 'pipeline:events', encode_json({ type => 'run_status', agent_id => 'someone-else',
    pipeline_id => $pid, run_id => $run2->{id}, status => 'failed', processed_count => 1, error_count => 1 }));
$s->redis('PUBLISH', 'pipeline:events', encode_json({ type => 'run_status', agent_id => 't21-agent-a',
    pipeline_id => $pid, run_id => $run2->{id}, status => 'completed', processed_count => 200000, error_count => 3 }));
wait_ok { (CxAgent::run_status($s, $pid) // '') eq 'completed' } 10, 'a run event completes the run';
my $row = $s->sql('SELECT status, ended_at, error_message FROM pipeline_runs WHERE id = ?', $run2->{id})->[0];
ok(defined $row->{ended_at}, 'ended_at set by the event');
ok(!defined $row->{error_message}, 'the event of another agent was ignored (not failed)');
$r = $s->get("$P/$pid/status", token => $viewer);
is($r->{json}{data}{status}, 'stopped', 'a completed run leaves the pipeline stopped');
$s->redis('PUBLISH', 'pipeline:events', encode_json({ type => 'run_status', agent_id => 't21-agent-a',
    pipeline_id => $pid, run_id => $run2->{id}, status => 'running', processed_count => 1, error_count => 0 }));
sleep 1;
is(CxAgent::run_status($s, $pid), 'completed', 'no event revives an ended run');

# ---- an agent that refuses start_pipeline ----
my $bad = CxAgent->new(id => 't21-agent-b', ack => 'fail_start', beat => 1)->start;
ok($bad->wait_online($s), 'second agent online');
my $p2 = CxAgent::create_pipeline($s, 'life-two');
$r = post_as($oper, "$P/$p2->{id}/start", { agent_id => 't21-agent-b' });
is($r->{status}, 200, 'start on the given agent: 200') or diag $r->{content};
is($r->{json}{data}{run}{agent_id}, 't21-agent-b', 'on the agent asked for');
my $c2 = $r->{json}{data}{command}{id};
wait_ok { (CxAgent::run_status($s, $p2->{id}) // '') eq 'failed' } 10, 'a refused start fails the run';
$r = $s->get("$P/$p2->{id}/status", token => $viewer);
is($r->{json}{data}{status}, 'failed', 'pipeline status failed');
is($r->{json}{data}{run}{error_message}, 'no such input plugin', "the run keeps the agent's error");
$row = $s->sql('SELECT status, result_error FROM agent_commands WHERE id = ?', $c2)->[0];
is($row->{status}, 'failed', 'the command is failed');
is($row->{result_error}, 'no such input plugin', 'with the error');
$r = post_as($oper, "$P/$p2->{id}/start", { agent_id => 't21-agent-a' });
is($r->{status}, 200, 'a failed run does not block a new start');

# ---- least loaded: agent b has no active run, a has one (life-two) ----
my $p3 = CxAgent::create_pipeline($s, 'life-three');
$r = post_as($oper, "$P/$p3->{id}/start");
is($r->{json}{data}{run}{agent_id}, 't21-agent-b', 'start picks the least loaded online agent');

# ---- audit ----
my $audit = $s->sql("SELECT action, actor, target_type, target_id, request_id, after_json FROM audit_log "
    . "WHERE target_id = ? AND action LIKE 'pipeline\\_%' AND action <> 'pipeline_create' ORDER BY id", $pid);
is_deeply([map { $_->{action} } @$audit],
    [qw(pipeline_start pipeline_pause pipeline_resume pipeline_pause pipeline_stop pipeline_start)],
    'one audit row per start/pause/resume/stop') or diag explain $audit;
is($audit->[0]{actor}, 'oper@example.com', 'actor');
is($audit->[0]{target_type}, 'pipeline', 'target_type');
is($audit->[0]{request_id}, 't21-start-1', 'request id');
is(decode_json($audit->[0]{after_json})->{run}{id}, $run->{id}, 'after: the run');
is($audit->[1]{request_id}, 't21-pause-1', 'request id of the pause');
is(scalar(@{ $s->sql("SELECT id FROM audit_log WHERE action LIKE 'pipeline\\_%' AND target_id = ? AND request_id IS NULL", $pid) }),
    0, 'every lifecycle audit row has a request id');

# ---- metrics counters ----
my $metrics = $s->get('/metrics')->{content};
my ($created) = $metrics =~ /^conduix_commands_created_total (\d+)/m;
my ($acked) = $metrics =~ /^conduix_commands_acked_total (\d+)/m;
cmp_ok($created // 0, '>=', 8, 'conduix_commands_created_total counts the commands');
cmp_ok($acked // 0, '>=', 6, 'conduix_commands_acked_total counts the acks');
like($metrics, qr/^conduix_commands_failed_total [1-9]/m, 'conduix_commands_failed_total counts the refusal');

is($s->stop, 0, 'server stops cleanly');
done_testing;
