# 09-signals.t -- SIGQUIT (graceful stop), SIGUSR1 (reopen the log file), logging.file, and the
# sd_notify messages (READY, RELOADING, STOPPING) when NOTIFY_SOCKET is set.
use v5.36;
use Test::More;
use CxTest;
use Time::HiRes qw(sleep);

my $s = CxTest->new;

# SIGQUIT: graceful stop, exit 0, nothing left.
$s->start;
ok($s->wait_children, 'children up');
is($s->stop(signal => 'QUIT'), 0, 'SIGQUIT: the master exits 0');
ok(!-e $s->pidfile, 'pidfile removed');
wait_ok { !$s->leftover_children } 10, 'no child left after SIGQUIT';

# logging.file and SIGUSR1
{
    my $file = $s->tmp . '/cp.log';
    $s->set_config('logging.file' => $file);
    $s->write_config;
    $s->start;
    $s->get('/health', 'X-Request-ID' => 't09-before');
    wait_ok { (CxTest::slurp($file) // '') =~ /t09-before/ } 10, 'the access log goes to logging.file';
    unlike($s->log, qr/t09-before/, 'and not to stderr');
    rename($file, "$file.1") or die "rename: $!";
    $s->signal('USR1');
    wait_ok { -e $file } 10, 'SIGUSR1: the log file is reopened (created again)';
    # Every process reopens: ask each worker (new connections spread over them) until the file has lines.
    wait_ok {
        $s->get('/health', 'X-Request-ID' => 't09-after');
        (CxTest::slurp($file) // '') =~ /t09-after/;
    } 10, 'new lines go to the new file';
    $s->get('/health', 'X-Request-ID' => "t09-spread-$_") for 1 .. 40;    # new connections reach every worker
    my $old = CxTest::slurp("$file.1") // '';
    unlike($old, qr/t09-spread/, 'no worker writes to the renamed file any more');
    is($s->stop, 0, 'stop exits 0');
    $s->set_config('logging.file' => undef);
    $s->write_config;
}

# sd_notify
{
    my $path = $s->tmp . '/notify.sock';
    my $read = CxTest::notify_listener($path);
    $s->start(env => { NOTIFY_SOCKET => $path });
    wait_ok { $read->() =~ /^READY=1$/m } 10, 'READY=1 sent once serving';
    $s->signal('HUP');
    wait_ok { $read->() =~ /^RELOADING=1$/m } 10, 'RELOADING=1 on SIGHUP';
    wait_ok { my $t = $read->(); $t =~ /RELOADING=1.*READY=1/s } 10, 'READY=1 again after the reload';
    $s->signal('TERM');
    wait_ok { $read->() =~ /^STOPPING=1$/m } 10, 'STOPPING=1 on SIGTERM';
    is($s->wait_exit(30), 0, 'exit 0');
}

done_testing;
