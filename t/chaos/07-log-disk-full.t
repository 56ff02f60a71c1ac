# chaos 7 -- the log on a full disk (a 2 MiB tmpfs of the test's own, mounted as root and removed at
# the end), under load and agent traffic: the server fills it with its own lines and keeps serving;
# the outage is said once on stderr; no line in the file is torn or glued to another; when room returns
# the log takes lines again and says how many were dropped.
use v5.36;
use Test::More;
use CxTest;
use CxLoad;
use CxChaos;
use JSON::PP;
use File::Temp ();
use Time::HiRes qw(sleep time);

BAIL_OUT('needs root to mount a tmpfs (scripts/test runs as root)') if $> != 0;
CxChaos::scenario('7 full disk under the log');
my $mnt = File::Temp::tempdir('cx-chaos7-XXXXXX', TMPDIR => 1, CLEANUP => 0);
system('mount', '-t', 'tmpfs', '-o', 'size=2m,mode=0777', 'cx-chaos7', $mnt) == 0 or BAIL_OUT("cannot mount a tmpfs on $mnt");
END { system('umount', '-l', $mnt); rmdir $mnt }
my $logfile = "$mnt/conduix.log";
my $filler = "$mnt/filler";
system('dd', 'if=/dev/zero', "of=$filler", 'bs=64k', 'count=8', 'status=none') == 0 or BAIL_OUT('dd');

my $s = CxChaos::server(workers => 4, config => { 'logging.file' => $logfile });
my $sim = CxChaos::sim($s, 'c7', '-n', 4, '--prefix', 'c7-agent-');
my @pids = CxChaos::pipelines($s, 6, 'c7');
my $admin = $s->admin_token;
sub dropped() { $s->get('/metrics')->{content} =~ /^conduix_log_lines_dropped_total (\d+)$/m ? $1 : 0 }

my $control = CxChaos::control($s, \@pids, clients => 1, pause => 0.2);
my @loads = (
    CxLoad->start($s, name => 'reads', clients => 3,
        request => sub ($c, $n) { [GET => "/api/v1/pipelines/$pids[$n % @pids]/status", token => $admin] }),
    CxLoad->start($s, name => 'health', clients => 2, keep_alive => 0, request => sub ($c, $n) { [GET => '/health'] }),
);
my $t0 = time;
ok(CxTest::wait_until(sub { dropped() > 0 }, 120, 'the disk full'), 'the log filled the disk');
my $tfull = time;
sleep 5;    # serving on a full disk
my @c = $control->stop;
my @r = map { $_->stop } @loads;
unlink $filler;
ok(CxTest::wait_until(sub { $s->get('/health'); grep { ($_->{msg} // '') =~ /takes lines again/ } $s->log_lines }, 30, 'recovery'),
    'the log takes lines again once there is room');

my $n_dropped = dropped();    # after the recovery: the last request on the full disk was this one's kind too
my @full = CxLoad::between([@c, @r], $tfull, $tfull + 5);
my ($failed, $stalled) = CxChaos::failures([grep { $_->{status} !~ /^(200|202|409)$/ } @c, @r], $s);
my @failed = @$failed;
my @said = grep { ($_->{msg} // '') =~ /^log: cannot write to / } $s->log_lines;
my ($rec) = grep { ($_->{msg} // '') =~ /takes lines again/ } $s->log_lines;
my ($n) = ($rec->{msg} // '') =~ /; (\d+) lines were dropped/;
open(my $fh, '<', $logfile) or BAIL_OUT("$logfile: $!");
my $text = do { local $/; <$fh> };
my @lines = split /\n/, $text, -1;
my $tail = pop @lines;
my @torn = grep { !eval { ref decode_json($_) eq 'HASH' } } @lines;

CxChaos::figure('requests answered while the disk was full', scalar(@full), '', @full > 100);
CxChaos::figure('requests failed', scalar(@failed) . (@failed ? ' (' . CxLoad::by_status(@failed) . ')' : '') . $stalled, '0', !@failed);
CxChaos::figure('lines in the file / dropped (counted)', scalar(@lines) . " / $n_dropped", '', $n_dropped > 0);
CxChaos::figure('outage said on stderr', scalar(@said) . ' time(s)', 'once', @said == 1);
CxChaos::figure('torn or glued lines', scalar(@torn) + (length $tail ? 1 : 0), '0', !@torn && !length $tail)
    or diag explain [@torn[0 .. 2]];
CxChaos::figure('dropped lines said on recovery', $n // 'none', "= counted ($n_dropped)", defined $n && $n == $n_dropped);
is($s->stop, 0, 'stop exits 0');
done_testing;
