# 82-log-full.t -- the log on a full disk: the server fills a small filesystem of the test's own (a 1 MiB
# tmpfs, mounted as root) with its log under load and keeps serving; lines are written whole or not at
# all (every line of the file is a complete JSON object, none glued to another); the dropped lines are
# counted in conduix_log_lines_dropped_total and said once on stderr, and once again when room returns,
# with their number. Twice, so that a second outage is said again.
use v5.36;
use Test::More;
use CxTest;
use CxLoad;
use JSON::PP;
use File::Temp ();
use Time::HiRes qw(sleep time);

BAIL_OUT('needs root to mount a tmpfs (scripts/test runs as root)') if $> != 0;

my $mnt = File::Temp::tempdir('cx-t82-XXXXXX', TMPDIR => 1, CLEANUP => 0);
system('mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0777', 'cx-t82', $mnt) == 0 or BAIL_OUT("cannot mount a tmpfs on $mnt");
my $mounted = 1;
END {
    if ($mounted) { system('umount', '-l', $mnt); rmdir $mnt }
}
my $logfile = "$mnt/conduix.log";

my $s = CxTest->new(workers => 2, config => { 'logging.file' => $logfile });
$s->start;

sub metric($name) {
    my $m = $s->get('/metrics')->{content};
    return $m =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# stderr_lines -- lines of the server's stderr (the test's server.log) about the log, as {msg}.
sub stderr_lines($re) { grep { ($_->{msg} // '') =~ $re } $s->log_lines }

# check_file -- every line of the log file is a whole JSON object ending in a newline.
sub check_file($what) {
    open(my $fh, '<', $logfile) or return fail("$what: read $logfile: $!");
    local $/;
    my $text = <$fh>;
    my @lines = split /\n/, $text, -1;
    my $last = pop @lines;
    is($last, '', "$what: the file ends with a newline");
    my @bad = grep { !eval { ref decode_json($_) eq 'HASH' } } @lines;
    is(scalar(@bad), 0, "$what: every one of the " . scalar(@lines) . ' lines is a whole JSON object') or diag explain [@bad[0 .. 2]];
    return scalar @lines;
}

my $filler = "$mnt/filler";
for my $round (1, 2) {
    # Room for a few thousand lines, then the server's own access log fills the rest.
    system('dd', 'if=/dev/zero', "of=$filler", 'bs=64k', 'count=4', 'status=none') == 0 or BAIL_OUT('dd');
    my $dropped0 = metric('conduix_log_lines_dropped_total');
    my $load = CxLoad->start($s, name => "r$round", clients => 3, request => sub ($c, $n) { [GET => '/health'] });
    ok(wait_until(sub { metric('conduix_log_lines_dropped_total') > $dropped0 + 200 }, 60, 'lines dropped'),
        "round $round: the disk is full and lines are dropped");
    sleep 0.5;
    my @r = $load->stop;    # (the load would fill the room made next within a few milliseconds)
    unlink $filler;
    ok(wait_until(sub { $s->get('/health'); stderr_lines(qr/takes lines again/) >= $round }, 30, 'recovery said'),
        "round $round: recovery said on stderr");
    my $dropped = metric('conduix_log_lines_dropped_total') - $dropped0;
    diag(sprintf('round %d: %d requests (%s), slowest %.3f s; %d log lines dropped', $round, scalar @r, CxLoad::by_status(@r),
        CxLoad::max_dt(@r), $dropped));
    is(CxLoad::by_status(@r), '200: ' . @r, "round $round: every request answered 200 while the log was full");
    is(scalar(stderr_lines(qr/^log: cannot write to \Q$logfile\E: No space left on device/)), $round,
        "round $round: the outage is said once on stderr");
    my ($rec) = (stderr_lines(qr/takes lines again/))[ $round - 1 ];
    my ($n) = ($rec->{msg} // '') =~ /; (\d+) lines were dropped/;
    is($n, $dropped, "round $round: the recovery line says how many were dropped, as counted");
    my $lines = check_file("round $round");
    ok($lines > 1000, "round $round: the log took lines until it was full ($lines)");
    like(CxTest::slurp($logfile), qr/"msg":"log: \Q$logfile\E takes lines again; \d+ lines were dropped/,
        "round $round: the recovery line is in the log too");
    unlink $logfile if $round == 1;    # the second round starts on an empty file (reopened on SIGUSR1)
    if ($round == 1) {
        $s->signal('USR1');
        kill 'USR1', map { $_->{pid} } $s->children;
        ok(wait_until(sub { $s->get('/health'); -s $logfile }, 20, 'log reopened'), 'the log is reopened on SIGUSR1');
    }
}
is($s->stop, 0, 'stop exits 0');
undef $s;
done_testing;
