# 24-failover.t -- an agent killed mid-run: its run becomes lost (ended, audited, its outstanding
# commands cancelled); with agents.failover a new run (trigger failover, failover_of the lost run) starts
# on another online agent with the pipeline's last checkpoint from Redis in start_pipeline's payload.
# Without failover the run only becomes lost; with no other agent online the failover waits for none.
use v5.36;
use utf8;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;

my $P = '/api/v1/pipelines';

# ---- failover on ----
my $s = CxAgent::server('agents.failover' => 'true');
my $oper = $s->token(role => 'operator', sub => 't24-oper');
my $r;

my $a1 = CxAgent->new(id => 't24-a1', ack => 'all', beat => 1)->start;
my $a2 = CxAgent->new(id => 't24-a2', ack => 'all', beat => 1)->start;
ok($_->wait_online($s), $_->id . ' online') for $a1, $a2;

my $p = CxAgent::create_pipeline($s, 'failover-one');
$r = $s->post("$P/$p->{id}/start", { agent_id => 't24-a1' }, token => $oper);
is($r->{status}, 200, 'start on a1');
my $run1 = $r->{json}{data}{run}{id};
wait_ok { (CxAgent::run_status($s, $p->{id}) // '') eq 'running' } 10, 'running on a1';

# a pause the agent will never see (queued behind nothing, but a1 dies before acknowledging it)
my $cp = { pipeline_id => $p->{id}, actor_path => '/user/src', offsets => { 'events-0' => 4711, 'events-1' => 42 },
    processed_count => 4753, state => { window => [1, 2, 3] }, timestamp => '2026-11-25T21:00:00.25+09:00', version => 7,
    metadata => { note => 'ünïcode ✓' } };
$s->redis('SET', "pipeline:$p->{id}:checkpoint", JSON::PP->new->utf8->canonical->encode($cp));

$a1->kill;
wait_ok { $s->sql('SELECT status FROM pipeline_runs WHERE id = ?', $run1)->[0]{status} eq 'lost' } 20,
    'the run of the killed agent becomes lost';
my $row = $s->sql('SELECT status, ended_at, error_message FROM pipeline_runs WHERE id = ?', $run1)->[0];
ok(defined $row->{ended_at}, 'ended_at set');
like($row->{error_message}, qr/t24-a1.*offline/, 'error_message names the agent');
is($s->sql("SELECT status FROM agents WHERE id = 't24-a1'")->[0]{status}, 'offline', 'a1 offline');

my $new;
wait_ok {
    $new = $s->sql("SELECT id, agent_id, `trigger`, failover_of, status FROM pipeline_runs WHERE failover_of = ?", $run1)->[0];
} 20, 'a failover run is created';
is($new->{trigger}, 'failover', 'trigger failover');
is($new->{agent_id}, 't24-a2', 'on the other online agent');
my $start;
wait_ok { ($start) = grep { $_->{msg}{type} eq 'start_pipeline' && $_->{msg}{payload}{run_id} eq $new->{id} }
    $a2->messages } 10, 'a2 receives start_pipeline for the new run';
is_deeply($start->{msg}{payload}{checkpoint}, $cp, 'payload.checkpoint is the last checkpoint, as the agent wrote it');
is($start->{msg}{payload}{config_yaml}, $p->{config_yaml}, 'payload.config_yaml');
wait_ok { (CxAgent::run_status($s, $p->{id}) // '') eq 'running' } 10, 'the failover run is running on a2';

$r = $s->get("$P/$p->{id}/history", token => $oper);
is_deeply([map { "$_->{status}/$_->{trigger}" } @{ $r->{json}{data} }], ['running/failover', 'lost/manual'],
    'history: the failover run, then the lost one');
is($r->{json}{data}[0]{failover_of}, $run1, 'failover_of');
my $audit = $s->sql("SELECT action, actor FROM audit_log WHERE (target_id = ? AND action = 'run_lost') "
    . "OR (target_id = ? AND action = 'pipeline_failover')", $run1, $p->{id});
is_deeply([sort map { $_->{action} } @$audit], ['pipeline_failover', 'run_lost'], 'audit rows for the loss and the failover');
my $m = $s->get('/metrics')->{content};
like($m, qr/^conduix_runs_lost_total 1$/m, 'runs lost counter');
like($m, qr/^conduix_runs_failed_over_total 1$/m, 'failed over counter');

# the lost agent's outstanding commands are cancelled: a start for a run on a dying agent is not left queued
my $p2 = CxAgent::create_pipeline($s, 'failover-two');
my $a3 = CxAgent->new(id => 't24-a3', ack => 'none', beat => 1)->start;
ok($a3->wait_online($s), 'a3 online (never acknowledges)');
$r = $s->post("$P/$p2->{id}/start", { agent_id => 't24-a3' }, token => $oper);
my $c3 = $r->{json}{data}{command}{id};
wait_ok { (CxAgent::run_status($s, $p2->{id}) // '') eq 'running' } 10, 'running on a3 (heartbeat)';
$a3->kill;
wait_ok { $s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id = ? AND status = ?', $p2->{id}, 'lost')->[0]{n} }
    20, 'a3 run lost';
is($s->sql('SELECT status FROM agent_commands WHERE id = ?', $c3)->[0]{status}, 'cancelled',
    'its unacknowledged start is cancelled: it no longer serves a run');
my $f2;
wait_ok { $f2 = $s->sql("SELECT agent_id, status FROM pipeline_runs WHERE pipeline_id = ? AND `trigger` = 'failover'",
    $p2->{id})->[0] } 20, 'failed over without a checkpoint';
is($f2->{agent_id}, 't24-a2', 'to the only online agent');
my $s2;
wait_ok { ($s2) = grep { $_->{msg}{type} eq 'start_pipeline' && $_->{msg}{pipeline_id} eq $p2->{id} } $a2->messages }
    10, 'a2 receives it';
ok(exists $s2->{msg}{payload}{checkpoint} && !defined $s2->{msg}{payload}{checkpoint}, 'checkpoint null when none');

# no other agent: lost, no failover run
$a2->kill;
wait_ok { $s->sql("SELECT COUNT(*) AS n FROM pipeline_runs WHERE status = 'lost'")->[0]{n} == 4 } 20,
    'both runs of a2 lost';
sleep 1;
is($s->sql("SELECT COUNT(*) AS n FROM pipeline_runs WHERE status IN ('pending', 'running', 'paused')")->[0]{n}, 0,
    'no agent online: nothing restarted');
is(CxAgent::run_status($s, $p->{id}), 'lost', 'status lost');
is($s->get("$P/$p->{id}/status", token => $oper)->{json}{data}{status}, 'lost', 'pipeline status lost');
$r = $s->post("$P/$p->{id}/start", undef, token => $oper);
is($r->{json}{code}, 'NO_AGENT_AVAILABLE', 'a lost run does not block a start; no agent does');
is($s->stop, 0, 'server stops cleanly');

# ---- failover off ----
my $t = CxTest->new(config => { %CxAgent::FAST, 'agents.failover' => 'false' });
$t->start;
my $b1 = CxAgent->new(id => 't24-b1', ack => 'all', beat => 1)->start;
my $b2 = CxAgent->new(id => 't24-b2', ack => 'all', beat => 1)->start;
ok($_->wait_online($t), $_->id . ' online') for $b1, $b2;
my $q = CxAgent::create_pipeline($t, 'no-failover');
$r = $t->post("$P/$q->{id}/start", { agent_id => 't24-b1' }, token => $t->token(role => 'operator'));
wait_ok { (CxAgent::run_status($t, $q->{id}) // '') eq 'running' } 10, 'running on b1';
$b1->kill;
wait_ok { (CxAgent::run_status($t, $q->{id}) // '') eq 'lost' } 20, 'lost';
sleep 1.5;
is($t->sql('SELECT COUNT(*) AS n FROM pipeline_runs')->[0]{n}, 1, 'failover off: no new run');
ok(!(grep { $_->{msg}{type} eq 'start_pipeline' } $b2->messages), 'b2 got nothing');

# a run left active on an agent recorded offline (as when MySQL was down when hbmon told the lifecycle)
# is found by the dispatcher's sweep and marked lost
my $q2 = CxAgent::create_pipeline($t, 'orphan');
$t->sql("INSERT INTO pipeline_runs (id, pipeline_id, agent_id, status, started_at) VALUES "
    . "('0000000a-0000-4000-8000-000000000001', ?, 't24-b1', 'running', NOW(3))", $q2->{id});
$t->sql("UPDATE agents SET status_changed_at = NOW(3) - INTERVAL 1 MINUTE WHERE id = 't24-b1'");
wait_ok { (CxAgent::run_status($t, $q2->{id}) // '') eq 'lost' } 30, 'the orphaned run is marked lost by the sweep';
is($t->stop, 0, 'server stops cleanly');
done_testing;
