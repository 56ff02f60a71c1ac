# 17-valgrind.t -- the real server under valgrind's memcheck for one start-reload-stop cycle: the master
# and every child it forks (they are the same program, no exec) each write their own log
# (--log-file=vg.%p.log); after a few requests (an authenticated one, a pipeline created and read),
# a SIGHUP that replaces every child and a SIGTERM, every process's log must say 0 errors and 0 bytes
# definitely lost. Suppressions, each with its reason: t/valgrind.supp. In the plain build's make check
# only (Makefile.am): under the sanitizers the binary cannot run under valgrind.
use v5.36;
use Test::More;
use CxTest;
use File::Basename qw(basename);

my $valgrind = $ENV{VALGRIND} || 'valgrind';
my $s = CxTest->new(workers => 2,
    config => { 'server.shutdown_timeout' => '30s', 'agents.monitor_interval' => '2s' });
my $vgdir = $s->tmp . '/vg';
mkdir $vgdir or die "$vgdir: $!";
my @vg = ($valgrind, '--tool=memcheck', '--leak-check=full', '--show-leak-kinds=definite',
    '--errors-for-leak-kinds=definite', '--error-exitcode=97', '--trace-children=yes', '--num-callers=40',
    "--suppressions=$CxTest::SRCDIR/t/valgrind.supp", "--log-file=$vgdir/vg.%p.log");

my $v = CxTest::run_cmd({}, $valgrind, '--version');
like($v->{out}, qr/^valgrind-3\./, "valgrind is installed ($v->{out})") or BAIL_OUT('valgrind is needed: scripts/deps');

# Under memcheck everything is 20 to 50 times slower: generous waits, outcomes asserted, no durations.
$s->start(wrap => \@vg, timeout => 600);
pass('the server under valgrind answers GET /health');

# started -- {pid => "worker 0 generation 0" or "scheduler"} from the master's "started …" lines so far.
sub started() {
    my %p;
    for my $l ($s->log_lines) {
        next unless ($l->{proc} // '') eq 'master';
        my $m = $l->{msg} // '';
        $p{$2} = "$1 generation $3" if $m =~ /^started (worker \d+) \(pid (\d+), generation (\d+)\)/;
        $p{$2} = $1 if $m =~ /^started (\w+) \(pid (\d+)\)$/;
    }
    return \%p;
}

# generation -- the master has started generation G: its two workers, and the singletons for the
# (G+1)th time (a reload restarts them); a migrate child came and went at the start.
sub generation($g) {
    my @names = values %{ started() };
    my %have = map { $_ => 1 } @names;
    return 0 unless $have{"worker 0 generation $g"} && $have{"worker 1 generation $g"};
    for my $kind (qw(scheduler hbmon dispatcher)) {
        return 0 unless $g + 1 <= grep { $_ eq $kind } @names;
    }
    return 1;
}
wait_ok { generation(0) } 600, 'the master started its children (workers, scheduler, hbmon, dispatcher)'
    or diag explain started();

my $admin = $s->admin_token;
my $r = $s->get('/api/v1/pipelines', token => $admin, ua => HTTP::Tiny->new(timeout => 120));
is($r->{status}, 200, 'an authenticated request: GET /api/v1/pipelines 200') or diag $r->{content};
$r = $s->request('POST', '/api/v1/pipelines', token => $admin, ua => HTTP::Tiny->new(timeout => 120),
    body => { name => 'under-valgrind', config_yaml => "sources:\n  in:\n    type: kafka\n    topic: events\n" });
is($r->{status}, 201, 'a pipeline create: 201') or diag $r->{content};
my $id = $r->{json}{data}{id} // '';
$r = $s->get('/api/v1/nowhere', token => $admin, ua => HTTP::Tiny->new(timeout => 120));
is($r->{status}, 404, 'an unknown path: 404 in the envelope');

# A reload replaces every child: the new generation's five, and the old workers drained and gone.
$s->signal('HUP');
wait_ok { generation(1) } 600, 'SIGHUP: a new generation of children started' or diag explain started();
wait_ok {
    $s->log =~ /"msg":"worker 0 \(pid \d+, generation 0\) exited with code 0"/
        && $s->log =~ /"msg":"worker 1 \(pid \d+, generation 0\) exited with code 0"/
} 600, 'the old generation of workers drained and exited with 0';
wait_ok { $s->get("/api/v1/pipelines/$id", token => $admin, ua => HTTP::Tiny->new(timeout => 120))->{status} == 200 } 600,
    'after the reload: the pipeline is read back';

my $st = $s->stop(timeout => 600);
is($st, 0, 'SIGTERM: the master exits 0 (97 would be a valgrind error in the master)');
unlike($s->log, qr/exited with code 97/, 'no child exited with valgrind\'s error code');

# Every process's log: complete (its summary written at exit), 0 errors, nothing definitely lost.
my %pids = (%{ started() }, $s->{pid} => 'master');
my %logs = map { /vg\.(\d+)\.log$/ ? ($1 => $_) : () } glob("$vgdir/vg.*.log");
cmp_ok(scalar(keys %logs), '>=', scalar(keys %pids), scalar(keys %logs) . ' valgrind logs, one per process');
for my $pid (sort { $a <=> $b } keys %pids) {
    ok($logs{$pid}, "a log for $pids{$pid} (pid $pid)");
}
for my $pid (sort { $a <=> $b } keys %logs) {
    my $text = CxTest::slurp($logs{$pid}) // '';
    my $what = ($pids{$pid} // 'a process') . " (pid $pid)";
    my ($errors) = $text =~ /ERROR SUMMARY: (\d+) errors/;
    ok(defined $errors, "$what: valgrind wrote its summary at exit") or diag $text;
    is($errors, 0, "$what: 0 errors") or diag $text;
    my ($lost) = $text =~ /definitely lost: ([\d,]+) bytes/;
    is($lost // 0, 0, "$what: 0 bytes definitely lost") or diag $text;
}

done_testing;
