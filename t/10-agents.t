# 10-agents.t -- agents appear from the heartbeat keys the original agents write, go offline when their
# beats stop (judged by receive time: the key itself still exists), come back on the next beat; every
# transition has its row, its audit row and its metric; the read endpoints; a killed hbmon is respawned
# and carries on without recording anything twice.
use v5.36;
use Test::More;
use Time::HiRes qw(time sleep);
use CxTest;

my $TIMEOUT = 3;     # agents.heartbeat_timeout, seconds
my $s = CxTest->new(config => { 'agents.heartbeat_timeout' => "${TIMEOUT}s", 'agents.monitor_interval' => '500ms' });
$s->start;
ok($s->wait_children, 'children up');

my $viewer = $s->token(role => 'viewer', sub => 'v1');

# go_beat -- the heartbeat exactly as an original Go agent writes it: nanoseconds, +09:00, zero usages,
# pipelines [], no pipeline_stats, SET with EX 30.
sub go_beat($id, $ts = '2024-03-01T18:04:05.123456789+09:00') {
    my $v = qq({"agent_id":"$id","timestamp":"$ts","cpu_usage":0,"memory_usage":0,"disk_usage":0,"pipelines":[]});
    $s->redis('SET', "agent:$id:heartbeat", $v, 'EX', 30);
    return $v;
}

sub agent($id) {
    my $r = $s->auth_get("/api/v1/agents/$id");
    return $r->{status} == 200 ? $r->{json}{data} : undef;
}

sub status_of($id) { my $a = agent($id); $a ? $a->{status} : '' }

sub transitions($id) {
    return $s->sql('SELECT from_status, to_status, reason FROM agent_status_transitions WHERE agent_id = ? ORDER BY id', $id);
}

sub metric($name) {
    my $m = $s->get('/metrics')->{content};
    return $m =~ /^\Q$name\E (\d+)/m ? $1 : undef;
}

# ---- discovery -------------------------------------------------------------------------------------
my $t0 = time;
my $beat = go_beat('go-agent-1');
my $listed;
wait_ok {
    my $r = $s->auth_get('/api/v1/agents?status=online');
    ($listed) = grep { $_->{id} eq 'go-agent-1' } @{ $r->{json}{data}{items} // [] };
    $listed;
} 10, 'a Go-shaped heartbeat key makes the agent appear online in GET /agents';
my $took = time - $t0;
cmp_ok($took, '<', 3 * $CxTest::SCALE, sprintf('within a few monitor intervals (%.2f s)', $took));
is($listed->{status}, 'online', 'status online');
ok(defined $listed->{registered_at}, 'registered_at set');
is($listed->{hostname}, undef, 'no hostname (older agents do not send one)');
is_deeply($listed->{labels}, {}, 'labels {}');
is_deeply($listed->{pipelines}, [], 'pipelines []');
like($listed->{last_heartbeat}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'last_heartbeat RFC 3339 UTC');
unlike($listed->{last_heartbeat}, qr/^2024-/, 'last_heartbeat is the receive time, not the agent clock');

my $st = $s->auth_get('/api/v1/agents/go-agent-1/status');
is($st->{status}, 200, 'GET /agents/:id/status');
is($st->{json}{data}{agent_id}, 'go-agent-1', 'status: agent_id');
is($st->{json}{data}{status}, 'online', 'status: online');
cmp_ok($st->{json}{data}{seconds_since_heartbeat}, '<', 5, 'status: seconds_since_heartbeat is small');
is_deeply($st->{json}{data}{pipelines}, [], 'status: pipelines');
my $one = agent('go-agent-1');
is_deeply($one->{active_runs}, [], 'GET /agents/:id has active_runs []');
is_deeply([map { [$_->{from_status}, $_->{to_status}] } @{ transitions('go-agent-1') }], [['unknown', 'online']],
    'one transition unknown -> online');

# ---- offline by receive time, while the key still exists ------------------------------------------
my $last_set = $t0;    # the last beat was the SET above, at t0 (not now: the checks since took a while)
my $went_offline;
wait_ok { status_of('go-agent-1') eq 'offline' and $went_offline = time } $TIMEOUT + 10, 'no more beats: offline';
my $after = $went_offline - $last_set;
cmp_ok($after, '>=', $TIMEOUT - 0.2, sprintf('not before the timeout (%.2f s after the last beat)', $after));
cmp_ok($after, '<', $TIMEOUT + 3 * $CxTest::SCALE, 'within timeout + a few intervals');
cmp_ok($s->redis('PTTL', 'agent:go-agent-1:heartbeat'), '>', 15000, 'the heartbeat key still exists (EX 30): liveness is receive time');
is_deeply([map { [$_->{from_status}, $_->{to_status}] } @{ transitions('go-agent-1') }],
    [['unknown', 'online'], ['online', 'offline']], 'transition online -> offline recorded');
like(transitions('go-agent-1')->[1]{reason}, qr/no heartbeat/, 'with a reason');
my $row = $s->sql('SELECT status, status_changed_at FROM agents WHERE id = ?', 'go-agent-1')->[0];
is($row->{status}, 'offline', 'agents.status offline');
ok($row->{status_changed_at}, 'agents.status_changed_at set');

# ---- back online; an identical value re-SET is a beat too ----------------------------------------
go_beat('go-agent-1', '2024-03-01T18:05:05.5+09:00');
wait_ok { status_of('go-agent-1') eq 'online' } 10, 'beating again: online';
wait_ok { status_of('go-agent-1') eq 'offline' } $TIMEOUT + 10, 'offline again';
$s->redis('SET', 'agent:go-agent-1:heartbeat', qq({"agent_id":"go-agent-1","timestamp":"2024-03-01T18:05:05.5+09:00","cpu_usage":0,"memory_usage":0,"disk_usage":0,"pipelines":[]}), 'EX', 30);
wait_ok { status_of('go-agent-1') eq 'online' } 10, 'the same content SET again (TTL reset) is a new beat';
is(scalar @{ transitions('go-agent-1') }, 5, 'five transitions in all');

my $audit = $s->sql(q{SELECT actor, action, target_type FROM audit_log WHERE target_id = ? ORDER BY id}, 'go-agent-1');
is_deeply([map { $_->{action} } @$audit], [qw(agent_online agent_offline agent_online agent_offline agent_online)],
    'an audit row per transition');
is_deeply([sort { $a cmp $b } keys %{ { map { $_->{actor} => 1 } @$audit } }], ['hbmon'], 'actor hbmon');
is($audit->[0]{target_type}, 'agent', 'target_type agent');

# ---- list filters and paging, roles ---------------------------------------------------------------
go_beat('go-agent-2');
wait_ok { status_of('go-agent-2') eq 'online' } 10, 'second agent online';
my $r = $s->auth_get('/api/v1/agents?page_size=1');
is($r->{status}, 200, 'list');
is($r->{json}{data}{total}, 2, 'total 2');
is(scalar @{ $r->{json}{data}{items} }, 1, 'page_size 1');
is($r->{json}{data}{items}[0]{id}, 'go-agent-1', 'ordered by id');
$r = $s->auth_get('/api/v1/agents?status=unknown');
is($r->{json}{data}{total}, 0, 'no unknown agents');
$r = $s->auth_get('/api/v1/agents?status=sleeping');
is($r->{status}, 400, 'bad status: 400');
is($r->{json}{code}, 'VALIDATION_ERROR', 'VALIDATION_ERROR');
ok(exists $r->{json}{details}{status}, 'details name the field status');
is($s->auth_get('/api/v1/agents?page_size=0')->{status}, 400, 'bad page_size: 400');
is($s->get('/api/v1/agents', token => $viewer)->{status}, 200, 'a viewer may list agents');
is($s->get('/api/v1/agents')->{status}, 401, 'no token: 401');
my $atok = $s->token(role => 'agent', sub => 'go-agent-1');
is($s->get('/api/v1/agents', token => $atok)->{status}, 403, 'an agent token may not list agents');
is($s->get('/api/v1/agents/go-agent-1', token => $atok)->{status}, 403, 'nor read the registry');
$r = $s->auth_get('/api/v1/agents/no-such-agent');
is($r->{status}, 404, 'unknown agent: 404');
is($r->{json}{code}, 'NOT_FOUND', 'NOT_FOUND');
is($s->auth_get('/api/v1/agents/no-such-agent/status')->{status}, 404, 'unknown agent status: 404');

# ---- metrics ----------------------------------------------------------------------------------------
# both beat now: on a loaded machine the checks since their last beats can take longer than the timeout
go_beat($_) for qw(go-agent-1 go-agent-2);
wait_ok { (metric('conduix_agents{status="online"}') // -1) == 2 } 10, '/metrics: 2 agents online';
is(metric('conduix_agents{status="offline"}'), 0, '/metrics: 0 offline');
cmp_ok(metric('conduix_agent_transitions_total{to="online"}'), '>=', 4, '/metrics: online transitions');
cmp_ok(metric('conduix_agent_transitions_total{to="offline"}'), '>=', 2, '/metrics: offline transitions');
cmp_ok(metric('conduix_agent_heartbeats_total{source="redis"}'), '>=', 4, '/metrics: heartbeats from Redis');

# ---- hbmon killed: respawned, no double recording, detection resumes ------------------------------
my $sim = "$CxTest::BUILDDIR/src/conduix-agent-sim";
my $simh = CxTest::run_cmd({ background => 1, tmp => $s->tmp }, $sim, '-p', $CxTest::REDIS_PORT, '-n', 1, '--prefix',
    'steady-', '-i', '0.5', '-q');
wait_ok { status_of('steady-0001') eq 'online' } 10, 'a steadily beating simulated agent is online';
my $old = $s->child_pid('hbmon');
ok($old, "hbmon pid $old");
kill 'KILL', $old;
my $new;
wait_ok { $new = $s->child_pid('hbmon'); $new && $new != $old } 30, 'hbmon respawned';
go_beat('after-respawn');
wait_ok { status_of('after-respawn') eq 'online' } 15, 'a new agent is detected by the new hbmon';
sleep 1.5;
is(scalar @{ transitions('steady-0001') }, 1, 'the steady agent was not recorded again by the new hbmon');
is(status_of('steady-0001'), 'online', 'and it is still online');
kill 'TERM', $simh->{pid};
my $res = CxTest::finish_cmd($simh, 20);
is($res->{exit}, 0, 'the simulator exits 0 on SIGTERM');
wait_ok { status_of('steady-0001') eq 'offline' } $TIMEOUT + 10, 'its beats stopped: offline, seen by the new hbmon';
wait_ok { status_of('go-agent-2') eq 'offline' } $TIMEOUT + 10, 'go-agent-2 offline too';
is($s->child_pid('hbmon'), $new, 'hbmon did not die again');

is($s->stop, 0, 'stop exits 0');
done_testing;
