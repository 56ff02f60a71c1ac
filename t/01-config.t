# 01-config.t -- check-config names the bad key and file:line; the server refuses a missing or short JWT
# secret; the environment overrides the file.
use v5.36;
use Test::More;
use CxTest;

my $s = CxTest->new;
my $dir = $s->tmp;

# check_config -- write TEXT to a file, run check-config on it: {exit, out, err, file}.
sub check_config($name, $text) {
    my $f = "$dir/$name.yaml";
    CxTest::spew($f, $text);
    my $r = $s->cli('check-config', { config => $f });
    $r->{file} = $f;
    return $r;
}

my $r = $s->cli('check-config');
is($r->{exit}, 0, 'check-config: the generated config is valid') or diag "$r->{out}$r->{err}";

my $good = "server:\n  host: 127.0.0.1\n  port: 8080\nauth:\n  jwt_secret: " . ('k' x 40) . "\n";

# bad -- a config error: exit 1, one line on stderr naming KEY and FILE:LINE.
sub bad($name, $text, $key, $line) {
    my $r = check_config($name, $text);
    is($r->{exit}, 1, "check-config $name: exit 1") or diag "$r->{out}$r->{err}";
    my @lines = grep { length } split /\n/, $r->{err};
    is(scalar @lines, 1, "check-config $name: one line on stderr") or diag $r->{err};
    like($r->{err}, qr/\Q$key\E/, "check-config $name: the message names $key") or diag $r->{err};
    like($r->{err}, qr/\Q$r->{file}\E:$line\b/, "check-config $name: the message names file:$line")
        or diag $r->{err};
}

bad('unknown-key', "server:\n  host: 127.0.0.1\n  bogus_key: 1\n  port: 8080\n", 'server.bogus_key', 3);
bad('unknown-section', $good . "bogus_section:\n  x: 1\n", 'bogus_section', 6);
bad('wrong-type', "server:\n  host: 127.0.0.1\n  workers: many\n", 'server.workers', 3);
bad('wrong-type-map', "database: 5\n", 'database', 1);
bad('bad-duration', "server:\n  port: 8080\n  shutdown_timeout: 10 parsecs\n", 'server.shutdown_timeout', 3);
bad('bad-duration-nested', "redis:\n  circuit_breaker:\n    failures: 2\n    cooldown: soon\n",
    'redis.circuit_breaker.cooldown', 4);
bad('bad-port', "server:\n  port: 70000\n", 'server.port', 2);
bad('bad-enum', "logging:\n  level: chatty\n", 'logging.level', 2);

# A YAML syntax error names the file and a line.
$r = check_config('syntax', "server:\n  port: [8080\n  host: x\n");
is($r->{exit}, 1, 'check-config: YAML syntax error exits 1');
like($r->{err}, qr/\Q$r->{file}\E:\d+/, 'check-config: YAML syntax error names file:line') or diag $r->{err};

# A missing file.
$r = $s->cli('check-config', { config => "$dir/no-such.yaml" });
is($r->{exit}, 1, 'check-config: a missing file exits 1');
like($r->{err}, qr/no-such\.yaml/, 'check-config: the message names the missing file') or diag $r->{err};

# serve refuses to start without a JWT secret, or with a short one.
# refused -- serve must exit non-zero by itself, saying why in a line that matches RE.
sub refused($name, $env, $re) {
    $s->write_config;
    $s->start(wait => 0, env => $env);
    my $st = $s->wait_exit(30);
    ok(defined $st, "$name: serve exits by itself") or do { $s->stop; return };
    isnt($s->exit_code, 0, "$name: exit status is not 0");
    like($s->log, $re, "$name: the log says why") or diag $s->log_tail;
    ok(!-e $s->pidfile, "$name: no pidfile left");
    truncate($s->log_file, 0);
}

$s->set_config('auth.jwt_secret' => undef);
refused('no JWT secret', {}, qr/JWT_SECRET|jwt_secret/);
refused('20-byte JWT_SECRET', { JWT_SECRET => 'x' x 20 }, qr/JWT_SECRET|jwt_secret/);
$s->set_config('auth.jwt_secret' => 'y' x 20);
refused('20-byte auth.jwt_secret', {}, qr/JWT_SECRET|jwt_secret/);
$s->set_config('auth.jwt_secret' => $s->secret);
$s->write_config;

# A 32-byte secret from the environment is enough; PORT and DB_NAME override the file.
{
    $s->set_config('auth.jwt_secret' => undef, 'database.name' => 'cx_no_such_database');
    $s->write_config;
    my $file_port = $s->port;
    my $env_port = CxTest::free_port();
    $s->start(env => { PORT => $env_port, JWT_SECRET => 'z' x 32, DB_NAME => $s->db_name });
    is($s->port, $env_port, 'serving on the port from env PORT');
    is($s->get('/health')->{status}, 200, 'GET /health on the PORT from the environment');
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $file_port, Proto => 'tcp', Timeout => 2);
    ok(!$c, "nothing listens on the file's port $file_port");
    my $ready;
    wait_ok { $ready = $s->get('/ready'); $ready->{status} == 200 } 30, 'DB_NAME from the environment: /ready 200'
        or diag explain $ready->{json};
    is($s->stop, 0, 'stop exits 0');
}

done_testing;
