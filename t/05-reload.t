# 05-reload.t -- reload under load: three SIGHUPs while three clients hammer /health, with zero failed
# requests and a new worker generation each time; a broken config is logged and ignored;
# `conduix-cp reload` works like kill -HUP.
use v5.36;
use Test::More;
use CxTest;
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep time);

my $N = 2;
my $s = CxTest->new(workers => $N);
$s->start;
ok($s->wait_children, 'all children up');
my $master = $s->master_pid;

# loader -- fork a client that sends GET /health until STOP_FILE exists; it writes "ok failed" and
# the first failures to OUT. MODE: keepalive (HTTP::Tiny, reused connection), strict (raw keep-alive
# connection, reconnecting only after the server said Connection: close), close (a connection per request).
sub loader($mode, $out, $stop_file) {
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    my ($ok, $failed, @why) = (0, 0);
    eval {
        my $ua = HTTP::Tiny->new(timeout => 10, keep_alive => $mode eq 'keepalive' ? 1 : 0);
        my $c;
        until (-e $stop_file) {
            my ($status, $err);
            if ($mode eq 'strict') {
                $c //= eval { $s->conn };
                my $r = $c ? $c->request('GET', '/health', timeout => 10) : { status => 0, error => 'connect' };
                ($status, $err) = ($r->{status}, $r->{error});
                undef $c if !$c || $r->{closed} || !$r->{status};
            } else {
                my $r = $ua->get($s->base_url . '/health');
                ($status, $err) = ($r->{status}, $r->{status} == 599 ? $r->{content} : '');
            }
            if ($status == 200) { $ok++ }
            else { $failed++; push @why, sprintf('%.3f %s %s', time, $status, $err // '') if @why < 5 }
        }
    };
    push @why, "died: $@" if $@;
    if (open(my $fh, '>', $out)) { print $fh "$ok $failed\n", map { "$_\n" } @why; close $fh }
    POSIX::_exit(0);
}

# under_load -- run CODE while three loaders run; returns (ok, failed, reasons).
sub under_load($code) {
    my $stop = $s->tmp . "/stop-load";
    unlink $stop;
    my @kids = map { [$_, loader($_, $s->tmp . "/load-$_", $stop)] } qw(keepalive strict close);
    sleep 1;
    $code->();
    sleep 1;
    CxTest::spew($stop, '');
    waitpid($_->[1], 0) for @kids;
    my ($ok, $failed, @why) = (0, 0);
    for my $k (@kids) {
        my @l = split /\n/, (CxTest::slurp($s->tmp . "/load-$k->[0]") // "0 1\nno result\n");
        my ($o, $f) = split ' ', shift @l;
        note("loader $k->[0]: $o ok, $f failed");
        $ok += $o;
        $failed += $f;
        push @why, map { "$k->[0]: $_" } @l;
    }
    return ($ok, $failed, @why);
}

# new_generation -- wait until none of OLD is a worker any more and N workers run.
sub new_generation(@old) {
    my %old = map { $_ => 1 } @old;
    return wait_until {
        my @w = $s->worker_pids;
        @w == $N && !grep { $old{$_} } @w;
    } 30, 'a new worker generation';
}

my @gens;
my ($ok, $failed, @why) = under_load(sub {
    for my $i (1 .. 3) {
        my @old = $s->worker_pids;
        $s->signal('HUP');
        ok(new_generation(@old), "SIGHUP $i: a new generation of $N workers replaced the old one");
        push @gens, [$s->worker_pids];
        sleep 0.7;
    }
});
cmp_ok($ok, '>', 300, "the loaders got answers ($ok)");
is($failed, 0, 'zero failed requests during three reloads under load') or diag join "\n", @why;
is($s->master_pid, $master, 'same master');
ok($s->wait_children, 'all children up after the reloads');
my $t = $s->titles;
is(scalar(grep { /^conduix-cp: worker/ } keys %$t), $N, 'worker titles 0..N-1 after reload') or diag explain $t;

# A broken config is logged and ignored.
{
    my @old = sort { $a <=> $b } $s->worker_pids;
    my $good = $s->config_text;
    (my $broken = $good) =~ s/^server:\n/server:\n  bogus_reload_key: 1\n/m;
    $s->write_config($broken);
    my ($ok2, $failed2, @why2) = under_load(sub {
        $s->signal('HUP');
        wait_ok { $s->log =~ /bogus_reload_key/ } 20, 'the log names the unknown key of the broken config'
            or diag $s->log_tail;
        sleep 1;
    });
    is($failed2, 0, 'no failed requests around the broken reload') or diag join "\n", @why2;
    is_deeply([sort { $a <=> $b } $s->worker_pids], \@old, 'the old workers keep serving');
    is($s->get('/health')->{status}, 200, '/health 200');
    is($s->master_pid, $master, 'the master still runs');
    $s->write_config($good);
}

# conduix-cp reload -c FILE
{
    my @old = $s->worker_pids;
    my $r = $s->cli('reload');
    is($r->{exit}, 0, 'conduix-cp reload exits 0') or diag "$r->{out}$r->{err}";
    ok(new_generation(@old), 'conduix-cp reload: a new worker generation');
    is($s->get('/health')->{status}, 200, '/health 200 after conduix-cp reload');
}

# A reload that changes a restart-only key keeps the old value and logs a warning.
{
    my $port = $s->port;
    my @old = $s->worker_pids;
    $s->set_config('server.port' => CxTest::free_port(), 'logging.level' => 'debug');
    $s->write_config;
    $s->{port} = $port;
    $s->signal('HUP');
    ok(new_generation(@old), 'reload with a changed server.port still reloads');
    is($s->get('/health')->{status}, 200, 'still serving on the old port');
    wait_ok { $s->log =~ /server\.port/ } 10, 'the log warns that server.port needs a restart';
}

is($s->stop, 0, 'stop exits 0');
done_testing;
