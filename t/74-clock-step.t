# 74-clock-step.t -- agent liveness is judged on the monotonic clock: a step of the wall clock (an NTP
# correction, a VM resumed, an operator's `date -s`) neither marks every agent offline at once (forward)
# nor keeps a dead agent online (backward). The server runs under libfaketime (Debian's libfaketime), its
# wall clock stepped by writing an offset to a file, its monotonic clock untouched; the agents and MySQL
# keep the real time.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use Time::HiRes qw(time sleep);

my $LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';
ok(-r $LIB, "libfaketime is installed ($LIB; scripts/deps installs libfaketime)") or BAIL_OUT('libfaketime missing');

my $TIMEOUT = 3;
my $s = CxTest->new(config => { 'agents.heartbeat_timeout' => "${TIMEOUT}s", 'agents.monitor_interval' => '500ms' });
my $offset = $s->tmp . '/faketime';
CxTest::spew($offset, "+0\n");
$s->start(env => {
    LD_PRELOAD => $LIB,
    FAKETIME_TIMESTAMP_FILE => $offset,
    FAKETIME_DONT_FAKE_MONOTONIC => 1,
    FAKETIME_CACHE_DURATION => 1,
    ASAN_OPTIONS => join(':', grep { length } $ENV{ASAN_OPTIONS} // '', 'verify_asan_link_order=0'),
});
ok($s->wait_children, 'children up, under libfaketime');

sub status_of($id) { ($s->sql('SELECT status FROM agents WHERE id = ?', $id)->[0] // {})->{status} // 'none' }
sub offline_transitions() { $s->sql(q{SELECT COUNT(*) AS n FROM agent_status_transitions WHERE to_status = 'offline'})->[0]{n} }

my @ag = map { CxAgent->new(id => "t74-$_", beat => 1)->start } 1 .. 3;
ok($_->wait_online($s), $_->id . ' online') for @ag;

# ---- forward: ten minutes ------------------------------------------------------------------------------
CxTest::spew($offset, "+600\n");
wait_ok {
    my $d = $s->sql(q{SELECT TIMESTAMPDIFF(SECOND, NOW(3), last_heartbeat) AS d FROM agents WHERE id = 't74-1'})->[0]{d};
    defined $d && $d > 500 && $d < 700;
} 10, "the server's wall clock jumped ten minutes ahead (last_heartbeat, written by its clock, is in MySQL's future)";
sleep 3 * $TIMEOUT;
is_deeply([map { status_of($_->id) } @ag], [('online') x 3], 'every agent is still online three timeouts later');
is(offline_transitions(), 0, 'no offline transition was recorded');

# ---- backward: twenty minutes (ten before the real time) -------------------------------------------
CxTest::spew($offset, "-600\n");
sleep 2;
$ag[0]->kill;
my $t0 = time;
wait_ok { status_of('t74-1') eq 'offline' } $TIMEOUT + 10, 'a dead agent still goes offline after the timeout';
cmp_ok(time - $t0, '>=', $TIMEOUT - 1.5, 'not before it');
is(status_of('t74-2'), 'online', 'the live ones stay online');
is(status_of('t74-3'), 'online', 'both');
is(offline_transitions(), 1, 'one offline transition in all');
is($s->get('/health')->{status}, 200, 'the server answers');

is($s->stop, 0, 'server stops cleanly');
done_testing;
