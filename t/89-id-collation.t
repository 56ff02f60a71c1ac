# 89-id-collation.t -- the ids in a binary collation (migration 0009): the id columns of pipelines, runs,
# schedules, commands and audit rows are utf8mb4_bin, agent ids stay utf8mb4_bin and free text keeps the
# table's collation; an id that is not ASCII, from a client's path, query or body or from an agent's
# acknowledgement, run event or heartbeat, is a 404 or a 400 in the envelope (never a 500, never a match
# of another row), and the messages beside it in the same batch still take effect. Ids match exactly as
# the server wrote them.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;

my $s = CxAgent::server();
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't89-oper');
my $JSON = JSON::PP->new->canonical;
my $r;

sub metric($name) { $s->get('/metrics')->{content} =~ /^\Q$name\E (\d+)/m ? $1 : 0 }
sub cmd_status($id) { $s->sql('SELECT status FROM agent_commands WHERE id = ?', $id)->[0]{status} }
sub run_status($id) { $s->sql('SELECT status FROM pipeline_runs WHERE id = ?', $id)->[0]{status} }

# ---- the schema after the migrations (t/07 checks the id columns themselves) ----------------------
my %coll = map { ("$_->{t}.$_->{c}" => $_->{coll}) } @{ $s->sql(q{SELECT table_name AS t, column_name AS c,
    collation_name AS coll FROM information_schema.columns WHERE table_schema = ? AND collation_name IS NOT NULL}, $s->db_name) };
is($coll{$_}, 'utf8mb4_bin', "$_: still utf8mb4_bin (an agent's own id)") for qw(agents.id pipeline_runs.agent_id agent_commands.agent_id);
is($coll{$_}, 'utf8mb4_unicode_ci', "$_: free text keeps the table's collation")
    for qw(pipelines.name pipelines.description pipeline_runs.error_message audit_log.actor);

# ---- ids from clients that are not ASCII: 404 or 400, never 500 -------------------------------------
my $p = CxAgent::create_pipeline($s, 't89-one');
my $sched = $s->auth_post('/api/v1/schedules', { pipeline_id => $p->{id}, cron_expression => '0 0 1 1 *' });
is($sched->{status}, 201, 'a schedule') or diag $sched->{content};
# a UUID's 36 bytes with one character outside ASCII: é is two bytes, so 35 characters
(my $near = $p->{id}) =~ s/^../%C3%A9/;
my @ids = ('%C3%BC', '%E2%82%AC', $near, "$p->{id}%C3%BC");
my @cases;
for my $id (@ids) {
    push @cases, map { ['GET', "$P/$id$_"] } '', '/status', '/history', '/metrics', '/versions';
    push @cases, ['PUT', "$P/$id", { name => 'x' }], ['DELETE', "$P/$id"];
    push @cases, map { ['POST', "$P/$id/$_"] } qw(start stop pause resume);
    push @cases, ['GET', "/api/v1/schedules/$id"], ['PUT', "/api/v1/schedules/$id", { cron_expression => '* * * * *' }],
        ['DELETE', "/api/v1/schedules/$id"], map { ['POST', "/api/v1/schedules/$id/$_"] } qw(enable disable trigger);
    push @cases, ['GET', "/api/v1/schedules?pipeline_id=$id"], ['GET', "$P/$p->{id}/history?before=$id"];
}
for my $c (@cases) {
    my ($m, $path, $body) = @$c;
    $r = $s->request($m, $path, token => $s->admin_token, defined $body ? (body => $body) : ());
    ok(($r->{status} == 404 || $r->{status} == 400) && defined $r->{json} && defined $r->{json}{code},
        "$m $path: $r->{status} in the envelope") or diag "$r->{status} $r->{content}";
}
for my $id ("\x{fc}", "\x{20ac}", "\x{e9}" . substr($p->{id}, 2)) {
    $r = $s->auth_post('/api/v1/schedules', JSON::PP->new->utf8->encode({ pipeline_id => $id, cron_expression => '* * * * *' }));
    is($r->{status}, 400, 'a schedule of a pipeline id that is not ASCII: 400') or diag $r->{content};
    ok(exists $r->{json}{details}{pipeline_id}, 'naming pipeline_id') or diag $r->{content};
}
is($s->sql('SELECT COUNT(*) AS n FROM pipelines')->[0]{n}, 1, 'the pipeline is still there, alone');
is($s->sql('SELECT COUNT(*) AS n FROM schedules')->[0]{n}, 1, 'and its schedule');
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs')->[0]{n}, 0, 'nothing started');

# ---- and from agents ----------------------------------------------------------------------------
my $rest = CxAgent->new(id => 't89-rest', ack => 'none', beat => 1, subscribe => 0)->start;
my $leg = CxAgent->new(id => 't89-redis', ack => 'none', beat => 1)->start;
ok($rest->wait_online($s) && $leg->wait_online($s), 'agents online');

sub start_on($agent, $name) {
    my $q = CxAgent::create_pipeline($s, $name);
    my $res = $s->post("$P/$q->{id}/start", { agent_id => $agent }, token => $oper);
    die "start $name: $res->{status} $res->{content}" unless $res->{status} == 200 || $res->{status} == 202;
    return ($q, $res->{json}{data}{run}{id}, $res->{json}{data}{command}{id});
}

# REST: an acknowledgement of a command id that is not ASCII names no command
my ($p1, $run1, $c1) = start_on('t89-rest', 't89-rest-ack');
my $tok = $s->token(role => 'agent', sub => 't89-rest');
for my $id ('%C3%A9', '%E2%82%AC' . substr($c1, 1)) {
    $r = $s->post("/api/v1/agents/t89-rest/commands/$id/ack", { success => JSON::PP::true }, token => $tok);
    ok(($r->{status} == 404 || $r->{status} == 400) && defined $r->{json}{code}, "REST ack of command $id: $r->{status}")
        or diag "$r->{status} $r->{content}";
}
is(cmd_status($c1), 'queued', 'the real command is not acknowledged by them');
$r = $s->post("/api/v1/agents/t89-rest/commands/$c1/ack", { success => JSON::PP::true }, token => $tok);
is($r->{status}, 200, 'its own ack: 200') or diag $r->{content};

# Redis: bogus acks and events published in one go with real ones: the real ones take effect
my ($p2, $run2, $c2) = start_on('t89-redis', 't89-redis-ack');
my ($p3, $run3, $c3) = start_on('t89-redis', 't89-redis-event');
wait_ok { $leg->commands_of($c2) && $leg->commands_of($c3) } 10, 'the starts reached the Redis agent';
my $ack = sub ($id) { $JSON->encode({ command_id => $id, agent_id => 't89-redis', success => JSON::PP::true }) };
my $ev = sub ($run, $pid, $st) { $JSON->encode({ type => 'run_status', agent_id => 't89-redis', pipeline_id => $pid, run_id => $run,
    status => $st, processed_count => 3, error_count => 0 }) };
for my $msg ($ack->("\x{e9}"), $ack->("\x{20ac}" . substr($c2, 1)), $ack->($c2), $ack->($c3), $ack->("$c3\x{fc}")) {
    utf8::encode($msg);
    $s->redis('PUBLISH', 'agent:responses:t89-redis', $msg);
}
wait_ok { cmd_status($c2) eq 'acked' && cmd_status($c3) eq 'acked' } 10, 'the real acks beside the bogus ones are recorded';
for my $msg ($ev->("\x{fc}", $p3->{id}, 'completed'), $ev->($run3, $p3->{id}, 'running'), $ev->("\x{e9}" . substr($run2, 1), $p2->{id}, 'failed'),
    $ev->($run2, "\x{e9}", 'running')) {
    utf8::encode($msg);
    $s->redis('PUBLISH', 'pipeline:events', $msg);
}
wait_ok { run_status($run3) eq 'running' } 10, 'the real event beside the bogus ones moves its run';
isnt(run_status($run2), 'failed', 'an event of a run id that is not ASCII fails no run');

# a heartbeat listing pipeline ids that are not ASCII: reconciled as before, the real run listed
$s->redis('SET', 'agent:t89-rest:heartbeat', do {
    my $b = $JSON->encode({ agent_id => 't89-rest', pipelines => [$p1->{id}, "\x{fc}", "\x{e9}" . substr($p1->{id}, 1)],
        pipeline_stats => [{ pipeline_id => $p1->{id}, status => 'running', processed_count => 41, error_count => 0 },
            { pipeline_id => "\x{fc}", status => 'running', processed_count => 5, error_count => 0 }] });
    utf8::encode($b);
    $b }, 'EX', 30);
wait_ok { ($s->sql('SELECT processed_count AS n FROM pipeline_runs WHERE id = ?', $run1)->[0]{n} // 0) == 41 } 10,
    "the listed run's counts are taken beside the ids that are not ASCII";
is($s->get('/health')->{status}, 200, 'the server still serves');
unlike($s->log, qr/Illegal mix of collations|Incorrect string value/, 'no statement failed on an id');

# ---- exact matches ------------------------------------------------------------------------------
is($s->auth_get("$P/$p->{id}")->{status}, 200, 'the id as the server wrote it: 200');
is($s->auth_get("$P/" . uc $p->{id})->{status}, 404, 'ids match byte for byte: the upper-case form is no other id of it');

done_testing;
