# 26-agent-sim.t -- the lifecycle against conduix-agent-sim, the simulator of real agents: acknowledging
# agents (start/pause/resume/stop, run events, Redis metrics), legacy agents (no acks: the run follows
# the heartbeats), a slow acknowledgement (a second command for the run waits for the first), commands
# queued across a Redis outage counted on the agents' side, and failover from a crashed simulator with
# the checkpoint it wrote. Stops the shared Redis (CxTest restarts it at exit whatever happens).
use v5.36;
use Test::More;
use CxTest qw(run_cmd);
use CxAgent;
use JSON::PP;

my $SIM = "$CxTest::BUILDDIR/src/conduix-agent-sim";
ok(-x $SIM, "the simulator is built ($SIM)") or BAIL_OUT("no $SIM: build it first (make)");

my $s = CxTest->new(config => {
    'agents.heartbeat_timeout' => '3s', 'agents.monitor_interval' => '500ms',
    'commands.redeliver_interval' => '1s', 'commands.ttl' => '1m', 'agents.failover' => 'true',
});
$s->start;
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't26-oper');
my $r;
my @sims;

# sim -- start conduix-agent-sim with ARGS; returns {h, log}. Waits for its ready line.
sub sim($name, @args) {
    my $log = $s->tmp . "/sim-$name.log";
    my $h = run_cmd({ tmp => $s->tmp, background => 1 }, $SIM, '-p', $CxTest::REDIS_PORT, '-i', '1s',
        '--metrics-interval', '1s', '--log', $log, '-q', @args);
    my $sim = { h => $h, log => $log, name => $name };
    push @sims, $sim;
    CxTest::wait_until(sub { sim_lines($sim, 'ready') }, 20, "simulator $name ready") or BAIL_OUT("simulator $name did not start");
    return $sim;
}

sub sim_lines($sim, $event = 'command') {
    open(my $fh, '<', $sim->{log}) or return ();
    my @l = grep { ($_->{event} // '') eq $event } map { eval { decode_json($_) } // () } <$fh>;
    return @l;
}

sub sim_stop($sim) {
    return unless $sim->{h};
    kill 'TERM', $sim->{h}{pid};
    CxTest::finish_cmd($sim->{h}, 10);
    delete $sim->{h};
}

END { sim_stop($_) for @sims }

sub online(@ids) {
    return CxTest::wait_until(sub {
        my $n = $s->sql('SELECT COUNT(*) AS n FROM agents WHERE status = ? AND id IN (' . join(',', ('?') x @ids) . ')',
            'online', @ids)->[0]{n};
        $n == @ids;
    }, 20, "@ids online");
}

sub status_is($pid, $want, $t = 15) { CxTest::wait_until(sub { (CxAgent::run_status($s, $pid) // '') eq $want }, $t, "$want") }

# ---- acknowledging agents ----
my $acking = sim('ack', '-n', 3, '--prefix', 't26-ack-');
ok(online(map { sprintf('t26-ack-%04d', $_) } 1 .. 3), 'three simulated agents online');
my @p = map { CxAgent::create_pipeline($s, "sim-$_") } 1 .. 3;
my %on;
for my $pp (@p) {
    $r = $s->post("$P/$pp->{id}/start", undef, token => $oper);
    is($r->{status}, 200, "start $pp->{name}: 200") or diag $r->{content};
    $on{ $r->{json}{data}{run}{agent_id} }++;
}
is(scalar keys %on, 3, 'least loaded: one pipeline per agent');
ok(status_is($_->{id}, 'running'), "$_->{name} running (ack)") for @p;
my $pid = $p[0]{id};
ok(CxTest::wait_until(sub { ($s->get("$P/$pid/metrics", token => $oper)->{json}{data}{source} // '') eq 'redis' }, 15, 'metrics'),
    "the simulator's pipeline:{id}:metrics are served");
is($s->post("$P/$pid/pause", undef, token => $oper)->{status}, 200, 'pause');
ok(status_is($pid, 'paused'), 'paused');
is($s->post("$P/$pid/resume", undef, token => $oper)->{status}, 200, 'resume');
ok(status_is($pid, 'running'), 'running');
is($s->post("$P/$pid/stop", undef, token => $oper)->{status}, 200, 'stop');
ok(status_is($pid, 'stopped'), 'stopped');
my @cmds = grep { $_->{pipeline_id} eq $pid } sim_lines($acking);
is_deeply([map { $_->{type} } grep { !$_->{repeat} } @cmds],
    [qw(start_pipeline pause_pipeline resume_pipeline stop_pipeline)], 'the simulator executed each command once');
ok((!grep { $_->{attempt} != 1 } @cmds), 'all acknowledged at the first attempt: no redelivery') or diag explain \@cmds;
my $row = $s->sql('SELECT processed_count FROM pipeline_runs WHERE pipeline_id = ?', $pid)->[0];
cmp_ok($row->{processed_count}, '>', 0, 'run counts from the events and heartbeats');

# ---- legacy agents ----
my $legacy = sim('legacy', '-n', 1, '--prefix', 't26-leg-', '--legacy');
ok(online('t26-leg-0001'), 'legacy agent online');
my $pl = CxAgent::create_pipeline($s, 'sim-legacy');
$r = $s->post("$P/$pl->{id}/start", { agent_id => 't26-leg-0001' }, token => $oper);
is($r->{status}, 200, 'start on the legacy agent');
my $lc = $r->{json}{data}{command}{id};
ok(status_is($pl->{id}, 'running'), 'running from its heartbeats');
is($s->sql('SELECT status FROM agent_commands WHERE id = ?', $lc)->[0]{status}, 'sent', 'never acknowledged');
ok(CxTest::wait_until(sub { grep { $_->{command_id} eq $lc && $_->{attempt} == 2 } sim_lines($legacy) }, 10, 'redelivery'),
    'redelivered to the legacy agent with attempt 2');
is($s->post("$P/$pl->{id}/stop", undef, token => $oper)->{status}, 200, 'stop');
ok(status_is($pl->{id}, 'stopped'), 'stopped from its heartbeats');

# ---- a slow acknowledgement: one control command at a time ----
my $slow = sim('slow', '-n', 1, '--prefix', 't26-slow-', '--slow-ack', '2500');
ok(online('t26-slow-0001'), 'slow agent online');
my $ps = CxAgent::create_pipeline($s, 'sim-slow');
$s->post("$P/$ps->{id}/start", { agent_id => 't26-slow-0001' }, token => $oper);
ok(status_is($ps->{id}, 'running'), 'running after the slow ack');
is($s->post("$P/$ps->{id}/pause", undef, token => $oper)->{status}, 200, 'pause');
$r = $s->post("$P/$ps->{id}/pause", undef, token => $oper);
is($r->{status}, 409, 'a second pause before the first is acknowledged: 409');
is($r->{json}{code}, 'INVALID_STATE', 'INVALID_STATE');
$r = $s->post("$P/$ps->{id}/stop", undef, token => $oper);
is($r->{status}, 200, 'a stop is never held back by a pending pause');
ok(status_is($ps->{id}, 'stopped'), 'stopped');

# ---- failover from a crashed simulator, with the checkpoint it wrote ----
my $crash = sim('crash', '-n', 1, '--prefix', 't26-crash-', '--crash-after', '6');
ok(online('t26-crash-0001'), 'crashing agent online');
my $pf = CxAgent::create_pipeline($s, 'sim-failover');
$r = $s->post("$P/$pf->{id}/start", { agent_id => 't26-crash-0001' }, token => $oper);
my $lost_run = $r->{json}{data}{run}{id};
ok(status_is($pf->{id}, 'running'), 'running on the agent that will crash');
ok(CxTest::wait_until(sub { $s->redis('GET', "pipeline:$pf->{id}:checkpoint") }, 15, 'checkpoint'), 'the simulator wrote a checkpoint');
ok(CxTest::wait_until(sub { $s->sql('SELECT status FROM pipeline_runs WHERE id = ?', $lost_run)->[0]{status} eq 'lost' }, 30,
    'lost'), 'the simulator crashed: run lost');
my $new;
ok(CxTest::wait_until(sub { $new = $s->sql('SELECT id, agent_id, checkpoint FROM pipeline_runs WHERE failover_of = ?', $lost_run)->[0] },
    15, 'failover run'), 'a failover run');
like($new->{agent_id}, qr/^t26-ack-/, 'on a live agent');
my $ck = eval { decode_json($new->{checkpoint} // '') };
is($ck->{pipeline_id}, $pf->{id}, 'started from the checkpoint the crashed agent wrote');
ok(status_is($pf->{id}, 'running'), 'the failover run is running');
my ($fo) = grep { $_->{run_id} eq $new->{id} } sim_lines($acking);
is($fo->{type}, 'start_pipeline', 'the live simulator got start_pipeline for it');

sim_stop($_) for @sims;
is($s->stop, 0, 'server stops cleanly');

# ---- a Redis outage, counted by the simulator (an instance whose agents outlive the outage) ----
# the stopped simulators' heartbeat keys live on for 30 s: the next instance must not find them online
$s->redis('DEL', $_) for @{ $s->redis('KEYS', 'agent:*:heartbeat') };
$s = CxTest->new(config => {
    'agents.heartbeat_timeout' => '60s', 'agents.monitor_interval' => '500ms',
    'commands.redeliver_interval' => '1s', 'commands.ttl' => '1m',
});
$s->start;
$oper = $s->token(role => 'operator', sub => 't26-oper');
my $out = sim('outage', '-n', 3, '--prefix', 't26-out-');
ok(online(map { sprintf('t26-out-%04d', $_) } 1 .. 3), 'three simulated agents online');
my @q = map { CxAgent::create_pipeline($s, "sim-outage-$_") } 1 .. 60;
$s->stop_redis;
my %codes;
$codes{ $s->post("$P/$_->{id}/start", undef, token => $oper)->{status} }++ for @q;
is_deeply(\%codes, { 202 => 60 }, '60 starts with Redis down: 202') or diag explain \%codes;
$s->start_redis;
my %want = map { $_->{command_id} => 1 } @{ $s->sql("SELECT id AS command_id FROM agent_commands WHERE type = 'start_pipeline'") };
is(scalar keys %want, 60, '60 start commands');
ok(CxTest::wait_until(sub {
    my %got = map { $_->{command_id} => 1 } grep { $want{ $_->{command_id} } } sim_lines($out);
    keys %got == 60;
}, 60, 'the simulated agents received all 60'), 'all 60 commands reached the simulated agents')
    or diag explain $s->sql('SELECT status, attempts, COUNT(*) AS n, MIN(seq) AS s0, MAX(seq) AS s1, MAX(last_sent_at) AS t '
        . 'FROM agent_commands GROUP BY status, attempts');
my %att;
my @dup = grep { $att{"$_->{command_id}/$_->{attempt}"}++ } sim_lines($out);
is_deeply(\@dup, [], 'no attempt delivered twice (agent-side count)');
ok(CxTest::wait_until(sub { $s->sql("SELECT COUNT(*) AS n FROM pipeline_runs WHERE status = 'running'")->[0]{n} == 60 }, 30,
    'running'), 'all 60 runs running');
# acks published before the dispatcher subscribed again are lost to pub/sub: the redelivery brings them back
ok(CxTest::wait_until(sub { $s->sql("SELECT COUNT(*) AS n FROM agent_commands WHERE status = 'acked'")->[0]{n} == 60 }, 30,
    'acked'), 'all 60 acknowledged');

sim_stop($_) for @sims;
is($s->stop, 0, 'server stops cleanly');
done_testing;
