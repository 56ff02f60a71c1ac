# server.user: started as root, the master opens its log, pidfile and socket, then becomes that user
# before it forks; every process of the server runs as the user, a reload and SIGUSR1 still work, the
# sd_notify messages still reach a socket only root may write, and a stop removes the pidfile.
use v5.36;
use Test::More;
use CxTest qw(wait_until wait_ok run_cmd);
use File::Copy qw(copy);

plan skip_all => 'server.user needs root (CI runs the suite as root)' if $> != 0;
my ($uid, $gid) = (getpwnam('nobody'))[2, 3];
plan skip_all => 'no user nobody' unless defined $uid;

# ids -- the real, effective, saved and filesystem uids and gids of PID, and its supplementary groups.
sub ids($pid) {
    open(my $fh, '<', "/proc/$pid/status") or return undef;
    my %st = map { /^(\w+):\s*(.*)$/ ? ($1, $2) : () } <$fh>;
    return { uid => [split ' ', $st{Uid}], gid => [split ' ', $st{Gid}], groups => [split ' ', $st{Groups} // ''] };
}

sub runs_as_nobody($pid) {
    my $i = ids($pid) // return 0;
    return !(grep { $_ != $uid } @{ $i->{uid} }) && !(grep { $_ != $gid } @{ $i->{gid} })
        && !(grep { $_ == 0 } @{ $i->{groups} });
}

my $s = CxTest->new(workers => 2);
my $tmp = $s->tmp;
# What the user must reach after the switch: the config (read again on reload), the migrations, and
# directories it owns for the pidfile and the log (a new file after rotation).
mkdir "$tmp/$_" for qw(run log migrations);
chown $uid, $gid, "$tmp/run", "$tmp/log";
copy($_, "$tmp/migrations/") or die "copy $_: $!" for glob("$CxTest::SRCDIR/migrations/*.sql");
chmod 0755, $tmp;
my $logfile = "$tmp/log/conduix-cp.log";
$s->set_config('server.user' => 'nobody', 'server.pidfile' => "$tmp/run/conduix-cp.pid",
    'logging.file' => $logfile, 'migrations.dir' => "$tmp/migrations");
$s->write_config;
chmod 0644, $s->config_file;

# A notify socket in a directory only root may enter, as start-stop-daemon --notify-await makes one.
mkdir "$tmp/notify", 0700;
my $npath = "$tmp/notify/notify.sock";
my $notes = CxTest::notify_listener($npath);

$s->start(env => { NOTIFY_SOCKET => $npath });
ok($s->wait_children, 'two workers, scheduler and hbmon');
ok(runs_as_nobody($s->master_pid), 'the master runs as nobody (real, effective, saved uid and gid; no root group)');
my @kids = $s->children;
ok(@kids >= 4 && !(grep { !runs_as_nobody($_->{pid}) } @kids), 'every child runs as nobody')
    or diag explain [map { { %$_, ids => ids($_->{pid}) } } @kids];
wait_ok { $notes->() =~ /^READY=1$/m } 10, 'READY=1 reaches a root-only NOTIFY_SOCKET after the switch';
is($s->get('/health')->{status}, 200, '/health 200');
wait_ok { $s->get('/ready')->{status} == 200 } 30, '/ready 200: migrations ran as nobody';
is((stat $logfile)[4], $uid, 'the log file belongs to nobody');
wait_ok { CxTest::slurp($logfile) =~ /running as user nobody \(uid $uid, gid $gid\)/ } 5, 'the switch is logged';
is(CxTest::slurp("$tmp/run/conduix-cp.pid") =~ s/\s+//gr, $s->master_pid, 'pidfile names the master');

# Reload: the config is read again by the user; a new generation of workers, still nobody.
my %old = map { $_ => 1 } $s->worker_pids;
$s->set_config('server.workers' => 3);
$s->write_config;
chmod 0644, $s->config_file;
$s->signal('HUP');
wait_ok { my @w = $s->worker_pids; @w == 3 && !(grep { $old{$_} } @w) } 30, 'SIGHUP: three new workers';
ok(!(grep { !runs_as_nobody($_) } $s->worker_pids), 'the new workers run as nobody');
wait_ok { $notes->() =~ /RELOADING=1.*READY=1/s } 10, 'RELOADING=1 then READY=1 after the switch';
unlike(CxTest::slurp($logfile), qr/reload refused/, 'the reload was not refused');

# Rotation: SIGUSR1 makes every process open the path again, as nobody.
rename $logfile, "$logfile.1" or die $!;
$s->signal('USR1');
wait_ok { -e $logfile } 10, 'SIGUSR1: a new log file';
is((stat $logfile)[4], $uid, 'created by nobody');
# each process reopens when it handles its own SIGUSR1: ask until a worker has
wait_ok { $s->get('/health'); CxTest::slurp($logfile) =~ /"type":"access"/ } 10, 'access lines go to the new file';

is($s->stop, 0, 'SIGTERM: exit 0');
ok(!-e "$tmp/run/conduix-cp.pid", 'the pidfile is removed by the user at exit');
is(scalar(my @left = $s->leftover_children), 0, 'no child left');

# A user that does not exist: check-config names the key; serve refuses to start.
{
    my $bad = CxTest->new;
    $bad->set_config('server.user' => 'cx-no-such-user');
    $bad->write_config;
    my $r = $bad->cli('check-config');
    is($r->{exit}, 1, 'check-config: unknown server.user exits 1');
    like($r->{err}, qr/server\.user.*no such user "cx-no-such-user"/, '... naming the key and the user');
    like($r->{err}, qr/config\.yaml:\d+/, '... and file:line');
}

# Not root and not the user: serve exits 1 with a line that says why, before it serves.
{
    my $other = CxTest->new;
    chmod 0755, $other->tmp;
    $other->set_config('server.user' => 'root', 'server.pidfile' => '', 'migrations.dir' => "$tmp/migrations");
    $other->write_config;
    chmod 0644, $other->config_file;
    my $r = run_cmd({ env => $other->server_env, timeout => 30 }, 'setpriv', "--reuid=$uid", "--regid=$gid",
        '--clear-groups', $CxTest::BIN, 'serve', '-c', $other->config_file);
    is($r->{exit}, 1, 'serve as nobody with server.user root: exit 1');
    like($r->{err}, qr/server\.user is \\?"root\\?" but the server runs as uid $uid, not root/, '... saying why');
}

done_testing;
