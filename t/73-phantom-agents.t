# 73-phantom-agents.t -- liveness comes from the time a beat was received, never from a key merely
# existing, and the instances on one database agree. A heartbeat key without a TTL, or with EX 100000000,
# brings no agent online (not on its first read, not by another instance, not after a takeover); only a
# write seen happening is a beat. One hbmon leads across the instances (a MySQL advisory lock): the others
# stand by and report the gauges from MySQL; when the leader stops, another takes over within a few ticks,
# reads the registry as it was left and gives live agents a whole timeout, so none flaps offline.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;
use Time::HiRes qw(time sleep);

my $TIMEOUT = 3;
my %cfg = ('agents.heartbeat_timeout' => "${TIMEOUT}s", 'agents.monitor_interval' => '500ms');
my $a = CxTest->new(config => {%cfg});
$a->start;
ok($a->wait_children, 'instance A up');
my $P = '/api/v1/pipelines';
my $oper = $a->token(role => 'operator', sub => 't73-oper');

sub status_of($id) { ($a->sql('SELECT status FROM agents WHERE id = ?', $id)->[0] // {})->{status} // 'none' }
sub transitions($id) { $a->sql('SELECT to_status FROM agent_status_transitions WHERE agent_id = ? ORDER BY id', $id) }
sub metric($s, $name) { $s->get('/metrics')->{content} =~ /^\Q$name\E (\d+)/m ? $1 : undef }
sub beat($id, %o) { encode_json({ agent_id => $id, timestamp => '2026-01-01T00:00:00Z', pipelines => [], %o }) }

# ---- keys that merely exist --------------------------------------------------------------------------
$a->redis('SET', 'agent:t73-nottl:heartbeat', beat('t73-nottl'));                         # no TTL at all
$a->redis('SET', 'agent:t73-long:heartbeat', beat('t73-long'), 'EX', 100_000_000);        # "EX 100000000"
$a->redis('SET', 'agent:t73-ok:heartbeat', beat('t73-ok'), 'EX', 30);                      # an agent's beat
wait_ok { status_of('t73-ok') eq 'online' } 10, 'a key SET with EX 30 is a beat: online';
sleep 1.5;    # three more ticks
is(status_of('t73-nottl'), 'none', 'a key without a TTL is no beat: not even registered');
is(status_of('t73-long'), 'none', 'nor one with EX 100000000');
my $p = CxAgent::create_pipeline($a, 'phantom-target');
my $r = $a->post("$P/$p->{id}/start", { agent_id => 't73-nottl' }, token => $oper);
is($r->{status}, 409, 'a start on the phantom is refused');
is($r->{json}{code}, 'NO_AGENT_AVAILABLE', 'NO_AGENT_AVAILABLE');
is($a->sql('SELECT COUNT(*) AS n FROM pipeline_runs')->[0]{n}, 0, 'no run placed on it');

# written while hbmon watches: that is a beat, TTL or not
$a->redis('SET', 'agent:t73-nottl:heartbeat', beat('t73-nottl', cpu_usage => 5));
$a->redis('SET', 'agent:t73-long:heartbeat', beat('t73-long'), 'EX', 100_000_000);       # same content, expiry moved
wait_ok { status_of('t73-nottl') eq 'online' && status_of('t73-long') eq 'online' } 10,
    'a key written again while hbmon watches is a beat, whatever its TTL';
# and when the writes stop, the keys still there change nothing: offline after the timeout
wait_ok { status_of('t73-nottl') eq 'offline' && status_of('t73-long') eq 'offline' } $TIMEOUT + 10,
    'no more writes: offline, though the keys never expire';
my $last = $a->sql(q{SELECT last_heartbeat FROM agents WHERE id = 't73-nottl'})->[0]{last_heartbeat};

# ---- a second instance on the same database and Redis -----------------------------------------------
my $b = CxTest->new(create_db => 0, workers => 1, config => {%cfg});
$b->set_config('database.name' => $a->db_name, 'auth.jwt_secret' => $a->secret);
$b->write_config;
$b->start;
ok($b->wait_children, 'instance B up');
wait_ok { $b->log =~ /another hbmon leads agent liveness for this database; standing by/ } 10, "B's hbmon stands by";
is(metric($a, 'conduix_hbmon_leader'), 1, "A's hbmon leads");
wait_ok { (metric($b, 'conduix_hbmon_leader') // -1) == 0 } 10, "B's does not";
my $dead = CxAgent->new(id => 't73-steady', ack => 'all', beat => 1)->start;
ok($dead->wait_online($a), 'a steadily beating agent online');
wait_ok {
    my $db = $a->sql(q{SELECT COUNT(*) AS n FROM agents WHERE status = 'online'})->[0]{n};
    $db >= 1 && (metric($b, 'conduix_agents{status="online"}') // -1) == $db;
} 15, 'the standby instance reports the agent gauges from MySQL';
sleep 2;
is(status_of('t73-nottl'), 'offline', 'the second instance did not bring the phantom back online');
is(status_of('t73-long'), 'offline', 'nor the other');
is_deeply([map { $_->{to_status} } @{ transitions('t73-nottl') }], [qw(online offline)], 'no transition since');

# ---- the leader goes away: B takes over --------------------------------------------------------------
my $t_stop = time;
is($a->stop, 0, 'instance A stops');
wait_ok { (metric($b, 'conduix_hbmon_leader') // 0) == 1 } 15, "B's hbmon leads now";
# (the gauge says "leader" before the registry is read and the line written: wait for the line)
wait_ok { $b->log =~ /hbmon: leading; \d+ agents known/ } 15, 'it read the registry when it took the lead';
sleep $TIMEOUT + 1;
is(status_of('t73-nottl'), 'offline', 'after the takeover, the key that merely exists is still no beat');
is(status_of('t73-long'), 'offline', 'nor the one with EX 100000000');
is($a->sql(q{SELECT last_heartbeat FROM agents WHERE id = 't73-nottl'})->[0]{last_heartbeat}, $last, 'its last_heartbeat unchanged');
is(status_of('t73-steady'), 'online', 'the live agent stayed online across the takeover');
is_deeply([map { $_->{to_status} } @{ transitions('t73-steady') }], ['online'], 'without flapping');
$r = $b->post("$P/$p->{id}/start", { agent_id => 't73-long' }, token => $oper);
is($r->{status}, 409, 'a start on the phantom is still refused');
$r = $b->post("$P/$p->{id}/start", { agent_id => 't73-steady' }, token => $oper);
is($r->{status}, 200, 'one on the live agent works') or diag $r->{content};

# the new leader still judges: the live agent dies
$dead->kill;
wait_ok { status_of('t73-steady') eq 'offline' } $TIMEOUT + 10, 'the new leader marks a dead agent offline';
wait_ok { ($a->sql('SELECT status FROM pipeline_runs')->[0]{status} // '') eq 'lost' } 10, 'and loses its run';

is($b->stop, 0, 'instance B stops');
done_testing;
