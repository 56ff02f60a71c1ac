# 13-seams.t -- what the master gives its children and what it keeps: no child holds a descriptor of
# the master's (its signalfd, its locked pidfile; the listen socket only the workers); the pidfile is
# locked for the master's life, and of two masters started together exactly one serves; the database
# keys do something (max_open_conns bounds the workers, max_idle_conns closes idle connections), and
# server.mode debug does what the docs say.
use v5.36;
use Test::More;
use CxTest;
use Fcntl qw(:flock);
use HTTP::Tiny;
use Time::HiRes qw(sleep time);

require 'sys/syscall.ph';

# same_file -- do fd A of process PA and fd B of process PB share one open file description? (kcmp(2)
# KCMP_FILE; a signalfd or socket cannot be told apart by its /proc link alone.)
my $SYS_kcmp = SYS_kcmp();
sub same_file($pa, $fa, $pb, $fb) {
    my $r = syscall($SYS_kcmp, 0 + $pa, 0 + $pb, 0, 0 + $fa, 0 + $fb);
    return 0 if $r < 0 && $!{EBADF};    # a descriptor closed meanwhile (the directory handle of fds())
    die "kcmp: $!" if $r < 0;
    return $r == 0;
}

sub fds($pid) {
    opendir(my $d, "/proc/$pid/fd") or return {};
    return { map { $_ => readlink("/proc/$pid/fd/$_") // '?' } grep { /^\d+$/ } readdir $d };
}

# ---- descriptors ----
{
    my $s = CxTest->new(workers => 2);
    $s->start;
    ok($s->wait_children, 'children up');
    my $m = $s->master_pid;
    my $mfds = fds($m);
    my ($sigfd) = grep { $mfds->{$_} =~ /signalfd/ } keys %$mfds;
    ok(defined $sigfd, "the master has a signalfd (fd $sigfd)") or diag explain $mfds;
    my ($pidfd) = grep { $mfds->{$_} eq $s->pidfile } keys %$mfds;
    ok(defined $pidfd, 'the master holds its pidfile open') or diag explain $mfds;

    # what the master got from its own parent (this test) is not the master's to close
    my $mine = fds($$);
    my @own = grep {
        my $mf = $_;
        $mf > 2 && !grep { same_file($m, $mf, $$, $_) } keys %$mine;
    } keys %$mfds;
    ok((grep { $_ == $sigfd } @own) && (grep { $_ == $pidfd } @own), 'the signalfd and the pidfile are the master\'s own');
    my @listen = grep { $mfds->{$_} =~ /^socket:/ } @own;
    is(scalar @listen, 1, 'and one socket, the listen socket') or diag explain { map { $_ => $mfds->{$_} } @own };
    my $listen = $listen[0] // -1;
    my @kids;
    ok(wait_until(sub {
        @kids = $s->children;
        @kids == 5 && 5 == grep { $_->{title} =~ /^conduix-cp: (worker [01]|scheduler|hbmon|dispatcher)$/ } @kids;
    }, 30, 'all five titled'), '2 workers, scheduler, hbmon, dispatcher') or diag explain \@kids;
    for my $k (@kids) {
        my $cfds = fds($k->{pid});
        my @shared;
        for my $mf (@own) {
            for my $cf (keys %$cfds) {
                next unless same_file($m, $mf, $k->{pid}, $cf);
                next if $mf == $listen && $k->{title} =~ /worker/;    # the workers serve on it
                push @shared, "$cf=$cfds->{$cf}";
            }
        }
        is_deeply(\@shared, [], "$k->{title}: no descriptor of the master's") or diag explain $cfds;
        my $has_listen = grep { same_file($m, $listen, $k->{pid}, $_) } keys %$cfds;
        is(!!$has_listen, !!($k->{title} =~ /worker/), "$k->{title}: the listen socket " .
            ($k->{title} =~ /worker/ ? 'kept' : 'closed'));
    }

    # the lock is the master's alone: another process cannot take it
    open(my $fh, '<', $s->pidfile) or die $s->pidfile . ": $!";
    ok(!flock($fh, LOCK_EX | LOCK_NB), 'the pidfile is locked while the master runs');
    close $fh;
    is($s->stop, 0, 'stop exits 0');
    ok(!-e $s->pidfile, 'pidfile removed');
}

# ---- two masters at once ----
{
    my $s = CxTest->new(workers => 1);
    for my $round (1 .. 5) {
        my @h = map { $s->cli('serve', { background => 1 }) } 1, 2;
        my @res;
        ok(wait_until(sub {
            $res[$_] //= CxTest::poll_cmd($h[$_]) for 0, 1;
            return (defined $res[0]) != (defined $res[1]) && ($s->get('/health')->{status} // 0) == 200;
        }, 30, 'one master exits, the other serves'), "round $round: one of two masters exits, the other serves");
        my $done = defined $res[0] ? 0 : 1;
        my $live = $h[1 - $done];
        my $res = $res[$done] // CxTest::finish_cmd($h[$done], 5);
        isnt($res->{exit}, 0, "round $round: the second master exits non-zero");
        like($res->{err}, qr/another conduix-cp master is running \(pid $live->{pid}, pidfile \S+ locked\)/,
            "round $round: and says why, naming the survivor") or diag $res->{err};
        chomp(my $in = CxTest::slurp($s->pidfile) // '');
        is($in, $live->{pid}, "round $round: the pidfile names the survivor");
        kill 'TERM', $live->{pid};
        my $r = CxTest::finish_cmd($live, 30);
        is($r->{exit}, 0, "round $round: the survivor stops cleanly");
        ok(!-e $s->pidfile, "round $round: and removes the pidfile");
    }
}

# ---- database.max_open_conns: the workers of two generations and the other children must fit ----
{
    my $s = CxTest->new(workers => 6, config => { 'database.max_open_conns' => 10, 'database.max_idle_conns' => 2 });
    my $r = $s->cli('check-config');
    is($r->{exit}, 1, 'check-config: 6 workers with max_open_conns 10 is an error');
    like($r->{err}, qr/server\.workers: 6 workers \(12 during a reload, old and new generation\) and 3 other processes need 15 MySQL connections, more than database\.max_open_conns 10/,
        'the message names both keys and the count') or diag $r->{err};
    $s->start(wait => 0);
    ok(defined $s->wait_exit(30), 'serve refuses to start');
    is($s->exit_code, 1, 'exit 1');
    like($s->log, qr/server\.workers: 6 workers/, 'the log says why');

    # reload: a good config with 3 workers (9 connections), then a change to 4 is refused
    $s->set_config('server.workers' => 3);
    $s->write_config;
    $s->start;
    ok($s->wait_children, '3 workers fit max_open_conns 10 (2 x 3 + 3 = 9)');
    my @old = sort { $a <=> $b } $s->worker_pids;
    $s->set_config('server.workers' => 4);
    $s->write_config;
    $s->signal('HUP');
    wait_ok { $s->log =~ /reload refused, keeping the running configuration: .*server\.workers: 4 workers/ } 20,
        'a reload to 4 workers is refused, naming server.workers';
    is_deeply([sort { $a <=> $b } $s->worker_pids], \@old, 'the 3 workers keep serving');
    is($s->stop, 0, 'stop exits 0');
}

# ---- database.max_idle_conns: idle connections beyond it are closed ----
# connections -- the server's MySQL connections (to its database; the test's own handle has none).
sub connections($s) {
    return (CxTest::root_dbh()->selectrow_array('SELECT COUNT(*) FROM information_schema.processlist WHERE db = ?', undef,
        $s->db_name))[0];
}
{
    # 4 workers + scheduler, hbmon, dispatcher = 7 processes; 4 may keep a connection while idle (the
    # singletons first, then worker 0), the others close theirs after 2 s unused
    my $s = CxTest->new(workers => 4, config => { 'database.max_idle_conns' => 4 });
    $s->start;
    ok($s->wait_children, 'children up');
    wait_ok { connections($s) == 4 } 30, 'max_idle_conns 4: four connections stay open once idle'
        or diag connections($s) . ' connections';
    my @st = map { $s->auth_get('/api/v1/pipelines', ua => HTTP::Tiny->new(keep_alive => 0))->{status} } 1 .. 20;
    is(scalar(grep { $_ == 200 } @st), 20, 'requests reconnect as needed (all 200)');
    wait_ok { connections($s) == 4 } 30, 'and are closed again when idle';
    sleep 3;
    is(connections($s), 4, 'still four');

    $s->set_config('database.max_idle_conns' => 10);    # the default: 7 fit
    $s->write_config;
    my @old = $s->worker_pids;
    $s->signal('HUP');
    wait_ok { my %o = map { $_ => 1 } @old; my @w = $s->worker_pids; @w == 4 && !grep { $o{$_} } @w } 30, 'reloaded';
    wait_ok { connections($s) == 7 } 30, 'max_idle_conns 10: every process keeps its connection';
    sleep 3;
    is(connections($s), 7, 'still seven after 3 s idle');
    is($s->stop, 0, 'stop exits 0');
}

# ---- server.mode ----
{
    my $s = CxTest->new(workers => 1, config => { 'server.mode' => 'debug', 'logging.level' => undef });
    $s->start;
    my $body = { name => 't13-dup', config_yaml => "source:\n  type: stdin\n" };
    is($s->auth_post('/api/v1/pipelines', $body)->{status}, 201, 'create');
    is($s->auth_post('/api/v1/pipelines', $body)->{status}, 409, 'the same name again: 409');
    my @lines = $s->log_lines;
    ok((grep { ($_->{level} // '') eq 'warn' && ($_->{msg} // '') =~ /server\.mode is debug/ } @lines),
        'debug: a warning at start that says so');
    ok((grep { ($_->{msg} // '') =~ m{^route GET +/api/v1/pipelines/:id \(pipelines_get\)$} } @lines), 'debug: the routes are listed');
    wait_ok { grep { ($_->{level} // '') eq 'debug' } $s->log_lines } 10, 'debug: debug lines are written (no logging.level set)';
    is($s->stop, 0, 'stop exits 0');

    my $d = CxTest->new(workers => 1, config => { 'server.mode' => 'debug', 'logging.level' => 'info' });
    $d->start;
    $d->auth_post('/api/v1/pipelines', $body) for 1, 2;
    ok(!(grep { ($_->{level} // '') eq 'debug' } $d->log_lines), 'debug with logging.level info: no debug lines');
    is($d->stop, 0, 'stop exits 0');

    my $r = CxTest->new(workers => 1, config => { 'server.mode' => 'release', 'logging.level' => undef });
    $r->start;
    $r->auth_post('/api/v1/pipelines', $body) for 1, 2;
    my @rl = $r->log_lines;
    ok(!(grep { ($_->{level} // '') eq 'debug' } @rl), 'release: no debug lines');
    ok(!(grep { ($_->{msg} // '') =~ /server\.mode is debug|^route / } @rl), 'release: no warning, no route list');
    is($r->stop, 0, 'stop exits 0');
}

done_testing;
