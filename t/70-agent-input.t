# 70-agent-input.t -- what agents send, hostile or broken, on its way to MySQL: acknowledgements over REST
# and Redis, run events, agent ids in URLs, bodies and Redis channels, the agents' metrics keys. Text that
# is not UTF-8 or holds a NUL is refused over REST (400 naming the field) and repaired over Redis (U+FFFD),
# text longer than a column is stored cut with a mark, never a 500 and never a lost outcome; an id with a
# NUL or bytes that are not UTF-8 is refused, never cut short or echoed; a run event must come from the
# run's agent; bogus messages are counted and logged at a bounded rate. After each case the server still
# answers and the stored rows are what they must be.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;

my $s = CxAgent::server();
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't70-oper');
my $JSON = JSON::PP->new->canonical;
# Rows come from DBI as characters, answers from HTTP as bytes.
my ($TRUNC, $FFFD) = ("\x{2026}[truncated]", "\x{fffd}");
my $FFFD_BYTES = "\xef\xbf\xbd";
my $r;

sub cmd_row($id) {
    $s->sql('SELECT status, attempts, result_message, result_error, LENGTH(result_message) AS message_bytes, '
        . 'LENGTH(result_error) AS error_bytes FROM agent_commands WHERE id = ?', $id)->[0];
}
sub run_row($id) { $s->sql('SELECT status, error_message, LENGTH(error_message) AS bytes FROM pipeline_runs WHERE id = ?', $id)->[0] }
sub metric($name) { $s->get('/metrics')->{content} =~ /^\Q$name\E (\d+)/m ? $1 : 0 }
sub utf8_ok($bytes) { my $c = $bytes; utf8::decode($c) }

# serves -- the server answers, and a body just received was valid UTF-8 JSON
sub serves($what, $res = undef) {
    ok(utf8_ok($res->{content}) && defined $res->{json}, "$what: the answer is valid UTF-8 JSON") if $res;
    is($s->get('/health')->{status}, 200, "$what: the server still serves");
}

# a start on agent $agent: (run id, command id)
sub start_on($agent, $name) {
    my $p = CxAgent::create_pipeline($s, $name);
    my $res = $s->post("$P/$p->{id}/start", { agent_id => $agent }, token => $oper);
    die "start $name: $res->{status} $res->{content}" unless $res->{status} == 200 || $res->{status} == 202;
    return ($p, $res->{json}{data}{run}{id}, $res->{json}{data}{command}{id});
}

# ---- agents: one that polls REST, one subscribed to its channel that never acknowledges ---------
my $rest = CxAgent->new(id => 't70-rest', ack => 'none', beat => 1, subscribe => 0)->start;
my $leg = CxAgent->new(id => 't70-redis', ack => 'none', beat => 1)->start;
ok($rest->wait_online($s) && $leg->wait_online($s), 'agents online');
my $tok = $s->token(role => 'agent', sub => 't70-rest');

# ---- REST acknowledgements ----------------------------------------------------------------------
my ($p1, $run1, $c1) = start_on('t70-rest', 'rest-utf8');
my $A = "/api/v1/agents/t70-rest/commands/$c1/ack";
for my $case (
    ["{\"success\":false,\"error\":\"bad \xff\xfe bytes\"}", 'error', 'error not UTF-8'],
    ["{\"success\":false,\"message\":\"cut\\u0000here\"}", 'message', 'a NUL in message'],
    ["{\"success\":true,\"command_id\":\"$c1\\u0000x\"}", 'command_id', 'a NUL in command_id'],
    ["{\"success\":true,\"agent_id\":\"t70-rest\\u0000x\"}", 'agent_id', 'a NUL in agent_id'],
    ["{\"success\":true,\"\xff\":1}", 'body', 'a field name that is not UTF-8'],
) {
    $r = $s->post($A, $case->[0], token => $tok);
    is($r->{status}, 400, "REST ack, $case->[2]: 400") or diag $r->{content};
    is($r->{json}{code}, 'VALIDATION_ERROR', "$case->[2]: VALIDATION_ERROR");
    ok(exists $r->{json}{details}{ $case->[1] }, "$case->[2]: details.$case->[1]") or diag $r->{content};
    serves($case->[2], $r);
}
is(cmd_row($c1)->{status}, 'queued', 'the refused acks changed nothing');
is(run_row($run1)->{status}, 'pending', 'nor the run');

# an error over 65,535 bytes: the outcome is kept, the text cut with a mark
my $long = 'E' x 70_000;
$r = $s->post($A, "{\"success\":false,\"error\":\"$long\",\"message\":\"" . ('\u00e9' x 40_000) . '"}', token => $tok);
is($r->{status}, 200, 'REST ack with a 70,000-byte error: 200, not 500') or diag substr($r->{content}, 0, 300);
is($r->{json}{data}{status}, 'failed', 'the command is failed');
my $row = cmd_row($c1);
is($row->{status}, 'failed', 'stored failed');
cmp_ok($row->{error_bytes}, '<=', 65_535, 'result_error fits its column');
cmp_ok($row->{error_bytes}, '>', 65_000, 'and keeps nearly all of it');
ok($row->{result_error} =~ /^E+\Q$TRUNC\E\z/, 'cut, ending with the mark');
cmp_ok($row->{message_bytes}, '<=', 65_535, 'result_message (80,000 bytes of é) fits too');
ok($row->{result_message} =~ /^\x{e9}+\Q$TRUNC\E\z/, 'cut at a character boundary');
is(run_row($run1)->{status}, 'failed', 'the run failed: the outcome is not lost');
ok(run_row($run1)->{error_message} =~ /^E+\Q$TRUNC\E\z/, "with the agent's error, cut");
cmp_ok(run_row($run1)->{bytes}, '<=', 65_535, 'within its column');
cmp_ok(metric('conduix_agent_texts_fixed_total'), '>=', 1, 'counted as a fixed text');
serves('a long error', $r);

# agent ids in URLs that are not UTF-8
for my $path ('/api/v1/agents/%FF%FE/commands', '/api/v1/agents/%FF/status', '/api/v1/agents/a%C3') {
    $r = $s->get($path, token => $s->admin_token);
    is($r->{status}, 400, "GET $path: 400");
    ok(exists $r->{json}{details}{id}, "$path: details.id");
    unlike($r->{content}, qr/[\x80-\xff]/, "$path: nothing of the id echoed");
    serves($path, $r);
}
$r = $s->post('/api/v1/agents/%FF/heartbeat', { agent_id => 'x', pipelines => [] }, token => $s->admin_token);
is($r->{status}, 400, 'a REST heartbeat under an id that is not UTF-8: 400');
$r = $s->post("/api/v1/agents/%FF/commands/$c1/ack", { success => JSON::PP::true }, token => $s->admin_token);
is($r->{status}, 400, 'an ack under such an id: 400');

# ---- start bodies naming agents ---------------------------------------------------------------------
my $p2 = CxAgent::create_pipeline($s, 'start-ids');
for my $case (["{\"agent_id\":\"t70-redis\\u0000junk\"}", 'a NUL after a real agent id'],
    ["{\"agent_id\":\"\xff\xfeagent\"}", 'an agent id that is not UTF-8'], ['{"agent_id":"has space"}', 'a space']) {
    $r = $s->post("$P/$p2->{id}/start", $case->[0], token => $oper);
    is($r->{status}, 400, "start with $case->[1]: 400") or diag $r->{content};
    ok(exists $r->{json}{details}{agent_id}, "$case->[1]: details.agent_id");
    unlike($r->{content}, qr/[\x80-\xff]/, "$case->[1]: not echoed");
    serves("start with $case->[1]", $r);
}
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id = ?', $p2->{id})->[0]{n}, 0, 'no run was started');

# ---- Redis acknowledgements ----------------------------------------------------------------------
sub ack_json(%f) { $JSON->encode({ %f }) }

# invalid UTF-8 and a 70,000-byte error over Redis: recorded repaired and cut, not redelivered forever
my ($p3, $run3, $c3) = start_on('t70-redis', 'redis-utf8');
wait_ok { $leg->commands_of($c3) } 10, 'the start reached the Redis agent';
my $bad = "{\"command_id\":\"$c3\",\"agent_id\":\"t70-redis\",\"success\":false,\"error\":\"no \xff\xfe plugin \\u0000 "
    . ('x' x 70_000) . '"}';
$s->redis('PUBLISH', 'agent:responses:t70-redis', $bad);
wait_ok { cmd_row($c3)->{status} eq 'failed' } 10, 'a Redis ack with bytes that are not UTF-8 and a NUL is recorded';
$row = cmd_row($c3);
ok($row->{result_error} =~ /^no \Q$FFFD$FFFD\E plugin \Q$FFFD\E x+\Q$TRUNC\E\z/, 'repaired with U+FFFD and cut with the mark')
    or diag substr($row->{result_error}, 0, 40);
cmp_ok($row->{error_bytes}, '<=', 65_535, 'within the column');
is(run_row($run3)->{status}, 'failed', 'the run failed with it');
my $n3 = scalar $leg->commands_of($c3);
sleep 2.5;    # two redeliver intervals
is(scalar $leg->commands_of($c3), $n3, 'and the start is not redelivered any more');
my $api = $s->auth_get("$P/$p3->{id}/status");
ok(utf8_ok($api->{content}) && $api->{json}{data}{run}{error_message} =~ /^no \Q$FFFD_BYTES$FFFD_BYTES\E plugin/,
    'the API shows the repaired text, in valid UTF-8');

# ids with a NUL, or a channel with one: refused, nothing recorded
my ($p4, $run4, $c4) = start_on('t70-redis', 'redis-nul');
wait_ok { $leg->commands_of($c4) } 10, 'the start reached the agent';
my $rej0 = metric('conduix_agent_messages_rejected_total{kind="ack"}');
$s->redis('PUBLISH', "agent:responses:t70-redis\0junk", ack_json(command_id => $c4, success => JSON::PP::true));
$s->redis('PUBLISH', 'agent:responses:t70-redis', "{\"command_id\":\"$c4\\u0000x\",\"success\":true}");
$s->redis('PUBLISH', 'agent:responses:t70-redis', "{\"command_id\":\"$c4\",\"agent_id\":\"t70-redis\\u0000x\",\"success\":true}");
$s->redis('PUBLISH', 'agent:responses:t70-redis', ack_json(command_id => $c4, agent_id => 'someone-else', success => JSON::PP::true));
$s->redis('PUBLISH', 'agent:responses:t70-redis', ack_json(command_id => $c4, success => 'yes'));
$s->redis('PUBLISH', 'agent:responses:t70-redis', ack_json(command_id => $c4));
$s->redis('PUBLISH', 'agent:responses:t70-redis', 'not json');
$s->redis('PUBLISH', 'agent:responses:t70-redis', '["command_id"]');
$s->redis('PUBLISH', "agent:responses:\xff", ack_json(command_id => $c4, success => JSON::PP::true));
$s->redis('PUBLISH', 'agent:responses:', ack_json(command_id => $c4, success => JSON::PP::true));
wait_ok { metric('conduix_agent_messages_rejected_total{kind="ack"}') >= $rej0 + 10 } 10, 'ten bogus acks counted';
like(cmd_row($c4)->{status}, qr/^(queued|sent)$/, 'none of them acknowledged the command');
is($s->sql('SELECT acked_at FROM agent_commands WHERE id = ?', $c4)->[0]{acked_at}, undef, 'no acked_at');
serves('bogus Redis acks');

# a flood of bogus acks is logged at a bounded rate
my $lines0 = () = $s->log =~ /refused an acknowledgement/g;
$s->redis('PUBLISH', 'agent:responses:t70-redis', "{\"command_id\":\"nope-$_\",\"success\":true}") for 1 .. 100;
wait_ok { metric('conduix_agent_messages_rejected_total{kind="ack"}') >= $rej0 + 110 } 10, '100 acks of unknown commands counted';
my $lines1 = () = $s->log =~ /refused an acknowledgement/g;
cmp_ok($lines1 - $lines0, '<=', 40, 'logged at most 20 lines per 10 s (the flood may straddle two windows)');
serves('a flood of acks');

# ---- run events ----------------------------------------------------------------------------------
my ($p5, $run5, $c5) = start_on('t70-redis', 'events');
wait_ok { (run_row($run5)->{status}) eq 'running' } 10, 'running from the heartbeats';
my $ev0 = metric('conduix_agent_messages_rejected_total{kind="event"}');
sub event(%f) { $s->redis('PUBLISH', 'pipeline:events', $JSON->encode({ type => 'run_status', %f })) }
event(pipeline_id => $p5->{id}, run_id => $run5, status => 'completed');                         # no agent_id
event(agent_id => 't70-rest', pipeline_id => $p5->{id}, run_id => $run5, status => 'completed'); # not the run's agent
event(agent_id => 't70-redis', run_id => $run5, status => 'lost');                               # not a status agents report
event(agent_id => 't70-redis', run_id => $run5, status => 'pending');
$s->redis('PUBLISH', 'pipeline:events', "{\"type\":\"run_status\",\"agent_id\":\"t70-redis\",\"run_id\":\"$run5\\u0000\",\"status\":\"completed\"}");
$s->redis('PUBLISH', 'pipeline:events', "{\"type\":\"run_status\",\"agent_id\":\"t70-redis\\u0000\",\"run_id\":\"$run5\",\"status\":\"completed\"}");
$s->redis('PUBLISH', 'pipeline:events', 'garbage');
event(agent_id => 't70-redis', status => 'completed');                                             # no run named
wait_ok { metric('conduix_agent_messages_rejected_total{kind="event"}') >= $ev0 + 8 } 10, 'eight bogus events counted';
is(run_row($run5)->{status}, 'running', 'none of them changed the run');

# a failed event with bytes that are not UTF-8: the run fails, with the text repaired
$s->redis('PUBLISH', 'pipeline:events', "{\"type\":\"run_status\",\"agent_id\":\"t70-redis\",\"pipeline_id\":\"$p5->{id}\","
    . "\"run_id\":\"$run5\",\"status\":\"failed\",\"processed_count\":12,\"error_message\":\"disk \xc3 full \xff\"}");
wait_ok { run_row($run5)->{status} eq 'failed' } 10, 'a failed event with bytes that are not UTF-8 fails the run';
is(run_row($run5)->{error_message}, "disk $FFFD full $FFFD", 'error_message repaired with U+FFFD');
is($s->sql('SELECT processed_count FROM pipeline_runs WHERE id = ?', $run5)->[0]{processed_count}, 12, 'its counts taken');
serves('events');

# ---- the agents' metrics key: not UTF-8, or huge ---------------------------------------------------
$s->redis('SET', "pipeline:$p5->{id}:metrics", "{\"pipeline_id\":\"$p5->{id}\",\"events_in\":1,\"note\":\"\xff\"}");
$r = $s->auth_get("$P/$p5->{id}/metrics");
is($r->{status}, 200, 'metrics with a key that is not UTF-8: 200');
is($r->{json}{data}{source}, 'run', 'falls back to the run counts');
serves('metrics key not UTF-8', $r);
$s->redis('SET', "pipeline:$p5->{id}:metrics", '{"pipeline_id":"' . $p5->{id} . '","pad":"' . ('x' x 1_100_000) . '"}');
is($s->auth_get("$P/$p5->{id}/metrics")->{json}{data}{source}, 'run', 'a metrics value over 1 MiB is ignored');

# ---- heartbeat keys with hostile names ------------------------------------------------------------
$s->redis('SET', "agent:t70-redis\0x:heartbeat", $JSON->encode({ agent_id => 't70-redis', pipelines => [] }), 'EX', 30);
$s->redis('SET', "agent:\xff\xfe:heartbeat", '{"agent_id":"\\u00ff","pipelines":[]}', 'EX', 30);
sleep 1.5;
is($s->sql(q{SELECT COUNT(*) AS n FROM agents WHERE id NOT LIKE 't70-%'})->[0]{n}, 0, 'keys with a NUL or bytes that are not UTF-8 register nobody');
$r = $s->auth_get('/api/v1/agents');
ok(utf8_ok($r->{content}), 'the agent list is valid UTF-8');
is($r->{json}{data}{total}, 2, 'two agents, as before');
serves('hostile heartbeat keys', $r);

is($s->stop, 0, 'server stops cleanly');
done_testing;
