# 00-start.t -- the server starts, answers /health and /ready, has its processes and pidfile, and
# `conduix-cp status` tells whether it runs.
use v5.36;
use Test::More;
use CxTest;

my $N = 3;
my $s = CxTest->new(workers => $N);
$s->start;
my $master = $s->master_pid;
ok($master, "serve runs (master pid $master)");

# /health
my $r = $s->get('/health');
is($r->{status}, 200, 'GET /health is 200');
like($r->{headers}{'content-type'} // '', qr{^application/json}, '/health is JSON');
is($r->{json}{status}, 'ok', '/health status is ok');
ok(defined $r->{json}{version} && !ref $r->{json}{version} && length $r->{json}{version}, '/health has a version')
    or diag explain $r->{json};
like($r->{json}{uptime_seconds} // '', qr/^\d+$/, '/health uptime_seconds is a whole number');
like($r->{request_id} // '', qr/^\S{8,64}$/, '/health carries X-Request-ID');
is($r->{headers}{'content-length'}, length($r->{content}), 'Content-Length matches the body');

my $v = $s->cli('version', { config => undef });
is($v->{exit}, 0, 'conduix-cp version exits 0');
like($v->{out} . $v->{err}, qr/\Q$r->{json}{version}\E/, 'version prints the version /health reports');

# keep-alive: several requests on one connection
{
    my $c = $s->conn;
    my $ok = 0;
    for my $i (1 .. 3) {
        my $x = $c->request('GET', '/health');
        $ok++ if $x->{status} == 200 && !$x->{closed} && defined $x->{headers}{'content-length'};
        diag explain $x unless $x->{status} == 200;
    }
    is($ok, 3, 'three GET /health on one keep-alive connection, each with Content-Length and no close');
}

# /ready once the children are up
ok($s->wait_children, "$N workers, scheduler and hbmon are up");
my $ready;
wait_ok { $ready = $s->get('/ready'); $ready->{status} == 200 } 30, 'GET /ready is 200'
    or diag explain $ready;
is($ready->{json}{status}, 'ready', '/ready status is ready');
is($ready->{json}{checks}{database}, 'ok', '/ready checks.database is ok');
is($ready->{json}{checks}{redis}, 'ok', '/ready checks.redis is ok');
ok(defined $ready->{json}{checks}{scheduler}, '/ready reports the scheduler') or diag explain $ready->{json};
ok(defined $ready->{json}{checks}{hbmon}, '/ready reports hbmon');

# process titles
is(CxTest::proc_title($master), 'conduix-cp: master', 'the master is titled conduix-cp: master');
my $t = $s->titles;
for my $i (0 .. $N - 1) {
    is(scalar @{ $t->{"conduix-cp: worker $i"} // [] }, 1, "one child titled conduix-cp: worker $i");
}
is(scalar @{ $t->{'conduix-cp: scheduler'} // [] }, 1, 'one child titled conduix-cp: scheduler');
is(scalar @{ $t->{'conduix-cp: hbmon'} // [] }, 1, 'one child titled conduix-cp: hbmon');
is(scalar(grep { /^conduix-cp: worker/ } keys %$t), $N, "exactly $N workers") or diag explain $t;

# pidfile
ok(-f $s->pidfile, 'pidfile exists');
my $pf = CxTest::slurp($s->pidfile) // '';
$pf =~ s/\s+//g;
is($pf, $master, "pidfile holds the master's pid");

# status
my $st = $s->cli('status');
is($st->{exit}, 0, 'conduix-cp status exits 0 while running') or diag "$st->{out}$st->{err}";
like($st->{out} . $st->{err}, qr/\b$master\b/, 'status prints the pid');

is($s->stop, 0, 'SIGTERM: the master exits 0');
ok(!-e $s->pidfile, 'pidfile removed after stop');
wait_ok { !$s->leftover_children } 10, 'no child left after stop'
    or diag explain [$s->leftover_children];

$st = $s->cli('status');
is($st->{exit}, 3, 'conduix-cp status exits 3 after stop') or diag "$st->{out}$st->{err}";

done_testing;
