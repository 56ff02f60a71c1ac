# 81-error-counters.t -- the error counters of /metrics move: conduix_db_errors_total on a MySQL error
# (here a statement on a table renamed away, which is a 500 and opens no breaker), and
# conduix_redis_errors_total and conduix_redis_breaker_opens_total with Redis stopped. (A frozen or
# stopped MySQL, and conduix_db_breaker_opens_total, are t/80-db-breaker.t's.) Stops the shared Redis
# (CxTest restarts it at exit whatever happens).
use v5.36;
use Test::More;
use CxTest;
use CxAgent;

my $s = CxTest->new(workers => 2);
$s->start;

sub metric($name) {
    my $m = $s->get('/metrics')->{content};
    return $m =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

for my $m (qw(conduix_db_errors_total conduix_db_deadlocks_total conduix_db_breaker_opens_total conduix_redis_errors_total
    conduix_redis_breaker_opens_total conduix_log_lines_dropped_total)) {
    is(metric($m), 0, "$m is 0 at first");
}
my $r = $s->auth_post('/api/v1/pipelines', { name => 'p81', config_yaml => "a: 1\n" });
is($r->{status}, 201, 'a pipeline');

# A MySQL error: the pipelines table is renamed away under the server.
$s->sql('RENAME TABLE pipelines TO pipelines_away');
my $n500 = 0;
for (1 .. 4) { $n500++ if $s->auth_get('/api/v1/pipelines')->{status} == 500 }
$s->sql('RENAME TABLE pipelines_away TO pipelines');
is($n500, 4, 'listing pipelines without their table is a 500');
cmp_ok(metric('conduix_db_errors_total'), '>=', 4, 'conduix_db_errors_total counts each failed statement (' . metric('conduix_db_errors_total') . ')');
is(metric('conduix_db_breaker_opens_total'), 0, 'an error of MySQL\'s opens no breaker: MySQL answered');
wait_ok { $s->auth_get('/api/v1/pipelines')->{status} == 200 } 10, 'the table back: 200 again';

# Redis stopped: the REST heartbeats, /ready and the singletons' ticks fail on it.
my $agent = $s->token(role => 'agent', sub => 'a81');
my $beat = { agent_id => 'a81', timestamp => CxAgent::now_rfc3339(), cpu_usage => 1, memory_usage => 1, disk_usage => 1,
    pipelines => [] };
is($s->post('/api/v1/agents/a81/heartbeat', $beat, token => $agent)->{status}, 200, 'a heartbeat with Redis up');
is(metric('conduix_redis_errors_total'), 0, 'no Redis error yet');
$s->stop_redis;
my $ok = 0;
for (1 .. 20) { $ok++ if $s->post('/api/v1/agents/a81/heartbeat', $beat, token => $agent)->{status} == 200 }
is($ok, 20, 'REST heartbeats are answered with Redis stopped (they go to MySQL)');
$s->get('/ready');
wait_ok { (metric('conduix_redis_breaker_opens_total') // 0) >= 1 } 30, 'conduix_redis_breaker_opens_total moves';
cmp_ok(metric('conduix_redis_errors_total'), '>=', 5, 'conduix_redis_errors_total counts the failures ('
    . metric('conduix_redis_errors_total') . ')');
my $opens = metric('conduix_redis_breaker_opens_total');
$s->start_redis;
wait_ok { ($s->get('/ready')->{json}{checks}{redis} // '') eq 'ok' } 60, 'Redis back';
cmp_ok(metric('conduix_redis_breaker_opens_total'), '>=', $opens, 'the counters keep their counts');
is($s->stop, 0, 'stop exits 0');
done_testing;
