# 71-ghosts.t -- no ghost pipelines: desired state (the runs of the control plane) and actual state (what
# agents report running) are reconciled. The scenario of issue 12: the dispatcher is killed while agents
# acknowledge, the acks are lost, the runs are stopped; a stop cancels the run's unacknowledged start, so
# the start is never redelivered to an agent that has forgotten its id. A command that no longer serves
# its run is cancelled, and only what is deliverable is offered (REST poll included). Pipelines an agent
# runs without an active run of ours there (an agent restarted with its old pipelines, a pipeline moved
# to another agent, one never started here) get a stop_pipeline: rate-limited, audited, counted; a
# pipeline unknown here is left alone. The other way round, a run its agent (restarted without it) no
# longer reports is failed, with the reason, and the agent is not taken for offline.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;
use Time::HiRes qw(time sleep);

my $TIMEOUT = 3;    # agents.heartbeat_timeout of CxAgent::server
my $REDELIVER = 5;  # the stops must come within a redeliver interval of the lost acks, as in the issue
my $s = CxAgent::server('commands.redeliver_interval' => "${REDELIVER}s");
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't71-oper');
my $r;

sub metric($name) { $s->get('/metrics')->{content} =~ /^\Q$name\E (\d+)/m ? $1 : 0 }
sub run_status($id) { $s->sql('SELECT status FROM pipeline_runs WHERE id = ?', $id)->[0]{status} }
sub cmd_status($id) { $s->sql('SELECT status FROM agent_commands WHERE id = ?', $id)->[0]{status} }
sub listed($agent) {
    my $v = $s->redis('GET', "agent:$agent:heartbeat") // return ();
    return @{ decode_json($v)->{pipelines} };
}
sub strays_of($agent, $pid) {
    $s->sql(q{SELECT COUNT(*) AS n FROM agent_commands WHERE agent_id = ? AND pipeline_id = ? AND type = 'stop_pipeline'
        AND created_by = 'system'}, $agent, $pid)->[0]{n};
}

# ---- the issue's scenario: acks lost with a killed dispatcher, then stops -------------------------
my $g = CxAgent->new(id => 't71-g', ack => 'all', beat => 1, remember => 2)->start;
ok($g->wait_online($s), 'agent online (it remembers only its last 2 command ids)');
my $disp = $s->child_pid('dispatcher');
kill 'STOP', $disp;    # acks published now wait in the dispatcher's subscription...
my (@pipes, @runs, @starts);
for my $i (1 .. 6) {
    my $p = CxAgent::create_pipeline($s, "ghost-$i");
    $r = $s->post("$P/$p->{id}/start", undef, token => $oper);
    is($r->{status}, 200, "start ghost-$i: published at once by the worker");
    push @pipes, $p;
    push @runs, $r->{json}{data}{run}{id};
    push @starts, $r->{json}{data}{command}{id};
}
wait_ok { (grep { $g->commands_of($_) } @starts) == 6 } 10, 'the agent received and acknowledged the six starts';
kill 'KILL', $disp;    # ...and are lost with its connection
kill 'CONT', $disp;
wait_ok { my $d = $s->child_pid('dispatcher'); $d && $d != $disp } 20, 'the dispatcher is respawned';
wait_ok { (grep { run_status($_) eq 'running' } @runs) == 6 } 15, 'the six runs are running (from the heartbeats)';
is((grep { cmd_status($_) eq 'sent' } @starts), 6, 'their starts were never acknowledged: the acks were lost');

my @stops;
for my $p (@pipes) {
    $r = $s->post("$P/$p->{id}/stop", undef, token => $oper);
    is($r->{status}, 200, "stop $p->{name}");
    push @stops, $r->{json}{data}{command}{id};
}
is((grep { cmd_status($_) eq 'cancelled' } @starts), 6, 'each stop cancelled its run\'s unacknowledged start');
wait_ok { (grep { run_status($_) eq 'stopped' } @runs) == 6 } 15, 'the six runs are stopped';
sleep $REDELIVER + 2;    # a redeliver interval: today the starts come back here, to an agent that forgot them
my @msgs = $g->messages;
my %stop_at = map { my $id = $stops[$_]; ($runs[$_] => (grep { $msgs[$_]{msg}{id} eq $id } 0 .. $#msgs)[0]) } 0 .. 5;
my @late = grep {
    my $i = $_;
    $msgs[$i]{msg}{type} eq 'start_pipeline' && defined $stop_at{ $msgs[$i]{msg}{payload}{run_id} }
        && $i > $stop_at{ $msgs[$i]{msg}{payload}{run_id} }
} 0 .. $#msgs;
is(scalar @late, 0, 'no start_pipeline reached the agent after the stop of its run') or diag explain [map { $msgs[$_]{msg} } @late];
is_deeply([listed('t71-g')], [], 'the agent runs none of them: no ghost');
is_deeply([map { CxAgent::run_status($s, $_->{id}) } @pipes], [('stopped') x 6], 'and the API says stopped, rightly');
cmp_ok(metric('conduix_commands_cancelled_total'), '>=', 6, 'cancelled commands counted');
is(metric('conduix_reconcile_stray_stops_total'), 0, 'no stray stop was needed (nor sent for a pipeline just stopped)');
is_deeply($s->get('/api/v1/agents/t71-g/commands', token => $s->admin_token)->{json}{data}, [],
    'nothing left to deliver to the agent');

# ---- the agent restarts with its old pipelines: each gets a stop naming its last run ---------------
$g->kill;
my $g2 = CxAgent->new(id => 't71-g', ack => 'all', beat => 1, run => [map { $_->{id} } @pipes[0 .. 2]])->start;
wait_ok { (grep { $_ } map { strays_of('t71-g', $_->{id}) } @pipes[0 .. 2]) == 3 } 15,
    'three ghosts reported in the heartbeats: three stray stops';
wait_ok { !listed('t71-g') } 10, 'the agent stopped them';
my $stray = $s->sql(q{SELECT id, payload, status FROM agent_commands WHERE agent_id = 't71-g' AND pipeline_id = ?
    AND created_by = 'system'}, $pipes[0]{id})->[0];
is(decode_json($stray->{payload})->{run_id}, $runs[0], "the stop names the pipeline's last run on that agent");
wait_ok { cmd_status($stray->{id}) eq 'acked' } 10, 'and was acknowledged';
my $audit = $s->sql(q{SELECT actor, target_type, target_id, after_json FROM audit_log WHERE action = 'pipeline_stop_stray'
    ORDER BY id});
is(scalar @$audit, 3, 'one audit row per stray stop');
is($audit->[0]{actor}, 'system', 'actor system');
is($audit->[0]{target_type}, 'pipeline', 'target: the pipeline');
my $after = decode_json($audit->[0]{after_json});
is($after->{agent_id}, 't71-g', 'after: the agent');
like($after->{reason}, qr/without an active run/, 'after: why');
is($after->{command}{type}, 'stop_pipeline', 'after: the command');
is(metric('conduix_reconcile_stray_stops_total'), 3, 'counted');
is_deeply([map { run_status($_) } @runs[0 .. 2]], [('stopped') x 3], 'the stopped runs stay stopped');

# ---- a pipeline moved to another agent, one never started here, one unknown here ------------------
my $b = CxAgent->new(id => 't71-b', ack => 'all', beat => 1)->start;
ok($b->wait_online($s), 'second agent online');
$r = $s->post("$P/$pipes[3]{id}/start", { agent_id => 't71-b' }, token => $oper);
is($r->{status}, 200, 'pipeline 4 started on agent b');
my $run_b = $r->{json}{data}{run}{id};
wait_ok { run_status($run_b) eq 'running' } 10, 'running on b';
my $fresh = CxAgent::create_pipeline($s, 'never-ran');
my $foreign = '00000000-0000-4000-8000-0000000000ff';
$g2->kill;
my $g3 = CxAgent->new(id => 't71-g', ack => 'all', beat => 1, run => [$pipes[3]{id}, $fresh->{id}, $foreign])->start;
wait_ok { strays_of('t71-g', $pipes[3]{id}) && strays_of('t71-g', $fresh->{id}) } 15,
    'the pipeline whose run is on b, and one never run here: stopped on g';
wait_ok { join(',', listed('t71-g')) eq $foreign } 10, 'g runs only the unknown pipeline now';
sleep $TIMEOUT + 1;
is(strays_of('t71-g', $foreign), 0, 'a pipeline unknown here is left alone');
like($s->log, qr/reports pipeline \Q$foreign\E, which is not known here/, 'and that is logged');
is(run_status($run_b), 'running', "the run on b is not touched");
is((grep { $_->{msg}{type} eq 'stop_pipeline' } $b->messages), 0, 'b received no stop');

# ---- an agent that will not stop: one stop per heartbeat timeout, not one per beat ---------------
my $p5 = $pipes[4];
my $st = CxAgent->new(id => 't71-stubborn', ack => 'all', beat => 1, stubborn => 1, run => [$p5->{id}])->start;
my $t0 = time;
wait_ok { strays_of('t71-stubborn', $p5->{id}) >= 1 } 15, 'the stubborn agent gets a stop';
sleep 3 * $TIMEOUT;
my $n = strays_of('t71-stubborn', $p5->{id});
my $bound = 2 + int((time - $t0) / $TIMEOUT);
cmp_ok($n, '>=', 2, "it is asked again after a timeout ($n stops)");
cmp_ok($n, '<=', $bound, "at most one per heartbeat timeout (bound $bound)");
is($s->sql(q{SELECT COUNT(*) AS n FROM agent_commands WHERE agent_id = 't71-stubborn' AND status IN ('queued', 'sent')})->[0]{n},
    0, 'never two outstanding at once');

# ---- what no longer serves its run is not offered: a REST agent's queued start, superseded -------
# one beat only (no later beat reconciles its runs), and it does not listen on Redis: it polls REST
$s->redis('SET', 'agent:t71-rest:heartbeat', encode_json({ agent_id => 't71-rest', pipelines => [] }), 'EX', 30);
wait_ok { ($s->sql(q{SELECT status FROM agents WHERE id = 't71-rest'})->[0]{status} // '') eq 'online' } 10,
    'REST agent online';
my $tok = $s->token(role => 'agent', sub => 't71-rest');
$r = $s->post("$P/$pipes[5]{id}/start", { agent_id => 't71-rest' }, token => $oper);
is($r->{status}, 202, 'start on the REST agent: queued');
my $start_q = $r->{json}{data}{command}{id};
$r = $s->post("$P/$pipes[5]{id}/stop", undef, token => $oper);
is($r->{status}, 202, 'stopped before the agent polled');
my $stop_q = $r->{json}{data}{command}{id};
is(cmd_status($start_q), 'cancelled', 'the start is cancelled');
$r = $s->get('/api/v1/agents/t71-rest/commands', token => $tok);
is_deeply([map { $_->{id} } @{ $r->{json}{data} }], [$stop_q], 'the agent is offered the stop only');
is($s->post("/api/v1/agents/t71-rest/commands/$stop_q/ack", { success => JSON::PP::true }, token => $tok)->{status}, 200, 'acked');
is(CxAgent::run_status($s, $pipes[5]{id}), 'stopped', 'the run is stopped');
$r = $s->post("/api/v1/agents/t71-rest/commands/$start_q/ack", { success => JSON::PP::true }, token => $tok);
is($r->{status}, 200, 'a late ack of the cancelled start is still recorded');
is(CxAgent::run_status($s, $pipes[5]{id}), 'stopped', 'and changes nothing of the ended run');

# ---- the other way: a run of ours its agent no longer reports (restarted without it) -------------
my $v = CxAgent->new(id => 't71-v', ack => 'all', beat => 1)->start;
ok($v->wait_online($s), 'agent v online');
my $pv = CxAgent::create_pipeline($s, 'vanishing');
$r = $s->post("$P/$pv->{id}/start", { agent_id => 't71-v' }, token => $oper);
is($r->{status}, 200, 'started on v');
my $run_v = $r->{json}{data}{run}{id};
wait_ok { run_status($run_v) eq 'running' && grep { $_ eq $pv->{id} } listed('t71-v') } 10, 'running on v, and listed';
sleep $TIMEOUT;    # running for a heartbeat timeout, so an absence is not a start still on its way
$v->kill;
my $v2 = CxAgent->new(id => 't71-v', ack => 'all', beat => 1)->start;    # back at once, without the pipeline
wait_ok { run_status($run_v) eq 'failed' } 3 * $TIMEOUT, 'the run its agent no longer reports is settled: failed';
like($s->sql('SELECT error_message FROM pipeline_runs WHERE id = ?', $run_v)->[0]{error_message},
    qr/no longer reports the pipeline in its heartbeats/, 'with the reason');
$r = $s->get("$P/$pv->{id}/status", token => $oper);
is($r->{json}{data}{status}, 'failed', 'the API says failed');
is($s->sql(q{SELECT COUNT(*) AS n FROM agent_status_transitions WHERE agent_id = 't71-v' AND to_status = 'offline'})->[0]{n}, 0,
    'the agent itself was never offline (it beat again at once)');
is(strays_of('t71-v', $pv->{id}), 0, 'and got no stop: it runs nothing of ours');
$r = $s->post("$P/$pv->{id}/start", undef, token => $oper);
is($r->{status}, 200, 'the pipeline can be started again');

is($s->stop, 0, 'server stops cleanly');
done_testing;
