# 03-ready.t -- /ready follows MySQL (503 while it is away, 200 when it returns) and reports Redis as
# degraded without turning not-ready; /health stays 200 throughout. Stops the shared test services
# (CxTest restarts them at exit whatever happens).
use v5.36;
use Test::More;
use CxTest;

my $s = CxTest->new;
$s->start;
my $r;
wait_ok { $r = $s->get('/ready'); $r->{status} == 200 } 30, '/ready is 200 at first' or diag explain $r;

# MySQL goes away
$s->stop_mysql;
wait_ok { $r = $s->get('/ready'); $r->{status} == 503 } 30, '/ready turns 503 with MySQL stopped'
    or diag explain $r;
is($r->{json}{status}, 'not_ready', '/ready status not_ready');
ok(defined $r->{json}{checks}{database} && $r->{json}{checks}{database} ne 'ok', 'checks.database is not ok')
    or diag explain $r->{json};
my $h_ok = 0;
for (1 .. 10) {
    my $h = $s->get('/health');
    $h_ok++ if $h->{status} == 200;
}
is($h_ok, 10, '/health stays 200 while MySQL is down');
$r = $s->get('/ready');
cmp_ok($r->{elapsed}, '<', 5, '/ready answers within 5 s while MySQL is down') or diag explain $r;

# MySQL returns
$s->start_mysql;
wait_ok { $r = $s->get('/ready'); $r->{status} == 200 } 60, '/ready back to 200 when MySQL returns'
    or diag explain $r;
is($r->{json}{checks}{database}, 'ok', 'checks.database ok again');

# Redis goes away: still ready, redis degraded
$s->stop_redis;
wait_ok { $r = $s->get('/ready'); ($r->{json}{checks}{redis} // '') eq 'degraded' } 30,
    '/ready reports checks.redis degraded with Redis stopped' or diag explain $r;
is($r->{status}, 200, '/ready stays 200 with Redis down');
is($r->{json}{status}, 'ready', '/ready status ready with Redis down');
is($s->get('/health')->{status}, 200, '/health 200 with Redis down');
my $slow = 0;
for (1 .. 5) { $slow++ if $s->get('/ready')->{elapsed} > 3 }
is($slow, 0, '/ready does not wait on the dead Redis');

# Redis returns
$s->start_redis;
wait_ok { $r = $s->get('/ready'); ($r->{json}{checks}{redis} // '') eq 'ok' } 30, 'checks.redis ok again'
    or diag explain $r;
is($r->{status}, 200, '/ready 200');

is($s->stop, 0, 'stop exits 0');
done_testing;
