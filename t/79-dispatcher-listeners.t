# 79-dispatcher-listeners.t -- the dispatcher asks Redis who listens (PUBSUB NUMSUB) before it claims a
# command: a subscribed agent gets its redeliveries, an agent nobody listens for has nothing claimed
# (its command stays queued, attempt 0, for its REST poll). When Redis answers but refuses the question
# (an ACL without PUBSUB NUMSUB), the dispatcher says so once and publishes as before, letting each
# PUBLISH's count of receivers decide: a refused NUMSUB must not stop delivery. And commands of agents
# nobody listens to, however many, do not hold back those of agents that do.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;

my $s = CxAgent::server();
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't77-oper');
my $restore_acl;
END { CxTest::redis_cmd('ACL', 'SETUSER', 'default', '+pubsub|numsub') if $restore_acl }

sub cmd_row($id) { $s->sql('SELECT status, attempts FROM agent_commands WHERE id = ?', $id)->[0] }
sub attempts_seen($ag, $cid) { my @a = map { $_->{msg}{attempt} } $ag->commands_of($cid); @a ? (sort { $b <=> $a } @a)[0] : 0 }

# a legacy agent (subscribed, never acknowledges): the dispatcher redelivers every second
my $leg = CxAgent->new(id => 't77-legacy', ack => 'none', beat => 1)->start;
ok($leg->wait_online($s), 'subscribed agent online');
my $p = CxAgent::create_pipeline($s, 't77-one');
my $r = $s->post("$P/$p->{id}/start", undef, token => $oper);
is($r->{status}, 200, 'start on the subscribed agent: 200') or diag $r->{content};
my $cid = $r->{json}{data}{command}{id};
wait_ok { attempts_seen($leg, $cid) >= 2 } 15, 'the dispatcher redelivers to a subscribed agent';

# a REST-polled agent: nothing claimed, nothing published
my $rest = CxAgent->new(id => 't77-rest', ack => 'none', beat => 1, subscribe => 0)->start;
ok($rest->wait_online($s), 'REST agent online');
my $p2 = CxAgent::create_pipeline($s, 't77-two');
$r = $s->post("$P/$p2->{id}/start", { agent_id => 't77-rest' }, token => $oper);
is($r->{status}, 202, 'start on the REST agent: 202');
my $c2 = $r->{json}{data}{command}{id};
my @pub = CxTest::redis_monitor(2, qr/"PUBLISH" "agent:commands:t77-rest"/);
is(scalar @pub, 0, 'nothing published to the REST agent in 2 s') or diag join("\n", @pub);
is_deeply(cmd_row($c2), { status => 'queued', attempts => 0 }, 'its command queued, attempt 0');

# Redis refuses PUBSUB NUMSUB: delivery goes on, said once
$restore_acl = 1;
CxTest::redis_cmd('ACL', 'SETUSER', 'default', '-pubsub|numsub');
my $before = attempts_seen($leg, $cid);
wait_ok { attempts_seen($leg, $cid) >= $before + 2 } 15, 'with NUMSUB refused the subscribed agent still gets its redeliveries';
like($s->log, qr/PUBSUB NUMSUB refused \(NOPERM[^)]*\): commands are published without asking who listens/,
    'the refusal is logged with Redis\'s reason');
my @said = $s->log =~ /PUBSUB NUMSUB refused/g;
is(scalar @said, 1, 'once, not every tick');
wait_ok { my $c = cmd_row($c2); $c->{status} eq 'queued' && $c->{attempts} == 0 } 10,
    'the REST agent\'s command queued again, attempt 0 (its publishes reached nobody)';
CxTest::redis_cmd('ACL', 'SETUSER', 'default', '+pubsub|numsub');
$restore_acl = 0;

# More due commands of agents nobody listens to than one read of the due list holds (500): they are older
# than everything behind them and skipped every tick, so the next page is read too, and a command for an
# agent that listens, queued behind them, still goes out.
my $p3 = CxAgent::create_pipeline($s, 't77-three');
$s->sql('INSERT INTO agent_commands (id, agent_id, type, pipeline_id, payload, status, created_by, expires_at, updated_at) '
    . "SELECT UUID(), CONCAT('t79-silent-', seq % 7), 'update_config', NULL, '{}', 'queued', 't79', NOW(3) + INTERVAL 1 HOUR, "
    . 'NOW(3) - INTERVAL 5 SECOND FROM seq_1_to_1200');
my $late = sprintf('%08x-0000-4000-8000-%012x', int(rand(2**32)), int(rand(2**40)));
$s->sql("INSERT INTO agent_commands (id, agent_id, type, pipeline_id, payload, status, created_by, expires_at, updated_at) "
    . "VALUES (?, 't77-legacy', 'update_config', ?, '{\"config_yaml\":\"source: y\\n\"}', 'queued', 't79', "
    . "NOW(3) + INTERVAL 1 HOUR, NOW(3) - INTERVAL 5 SECOND)", $late, $p3->{id});
wait_ok { attempts_seen($leg, $late) >= 1 } 15, 'a command queued behind 1,200 for agents nobody listens to reaches its agent';
is($s->sql("SELECT COUNT(*) AS n FROM agent_commands WHERE agent_id LIKE 't79-silent-%' AND (status <> 'queued' OR attempts > 0)")->[0]{n},
    0, 'the 1,200 stay queued, attempt 0');

$s->stop;
is($s->exit_code, 0, 'server stops cleanly');
done_testing;
