# CxTest -- the integration-test harness of conduix-cp: starts the real binary against a real MariaDB and
# Redis, and speaks HTTP, SQL and RESP to it.
#
#   use CxTest;                       # exports wait_until and wait_ok
#   my $s = CxTest->new(config => {'server.workers' => 2});
#   $s->start;                        # serve -c CFG in the background, waits for GET /health = 200
#   my $r = $s->get('/health');       # {status, headers, content, json, request_id}
#   is $s->stop, 0;                   # SIGTERM, wait, raw wait status
#
# Services. The first CxTest->new of a test process takes an exclusive lock (so test files never run at
# the same time, even under `make -j check`: some stop the shared MariaDB), then runs
# `scripts/services start DIR MYSQL_PORT REDIS_PORT` with DIR = $CX_TEST_SVC_DIR or
# /tmp/conduix-test-svc-$UID, ports $CX_TEST_MYSQL_PORT (23316) and $CX_TEST_REDIS_PORT (26389); it is
# idempotent and fast when they already run. Redis is flushed once per test file.
#
# Each instance has its own database cx_t_<test>_<pid>[_n], temp dir, free port, YAML config and 40-byte
# JWT secret. Everything is cleaned up at exit (server and its children stopped, database dropped) unless
# CX_TEST_KEEP is set. Timeouts are multiplied by $CX_TEST_TIMEOUT_SCALE (e.g. 3 under sanitizers).
package CxTest;

use v5.36;
use Carp qw(croak);
use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256);
use Exporter qw(import);
use Fcntl qw(:flock);
use File::Basename qw(basename dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64url decode_base64url);
use POSIX qw(:sys_wait_h);
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(wait_until wait_ok);
our @EXPORT_OK = qw(jwt_hs256 jwt_decode free_port proc_title proc_alive run_cmd notify_listener);

my $here = dirname(abs_path(__FILE__));
our $SRCDIR = $ENV{CX_SRCDIR} // abs_path("$here/../..");
our $BUILDDIR = $ENV{CX_BUILDDIR} // $SRCDIR;
our $BIN = $ENV{CX_BIN} // "$BUILDDIR/src/conduix-cp";
our $SCALE = ($ENV{CX_TEST_TIMEOUT_SCALE} // 1) || 1;
our $SVC_DIR = $ENV{CX_TEST_SVC_DIR} // "/tmp/conduix-test-svc-$<";
our $MYSQL_PORT = $ENV{CX_TEST_MYSQL_PORT} // 23316;
our $REDIS_PORT = $ENV{CX_TEST_REDIS_PORT} // 26389;
our $DB_USER = 'conduix';
our $DB_PASSWORD = 'conduix';

# Environment variables that override the config file: never inherited from the caller's shell.
our @OVERRIDE_ENV = qw(PORT DB_HOST DB_PORT DB_USER DB_PASSWORD DB_NAME DB_SOCKET REDIS_HOST REDIS_PORT
    REDIS_PASSWORD JWT_SECRET OAUTH2_CLIENT_ID OAUTH2_CLIENT_SECRET OIDC_ISSUER_URL NOTIFY_SOCKET);

my $JSON = JSON::PP->new->canonical->allow_nonref;
my $lock_fh;           # held for the whole test process
my %faults;            # service => 1 while a test has it stopped
my $sanitizer_reports = 0;    # reports found in server logs; the test file then exits non-zero
my @instances;         # for cleanup at exit
my $seq = 0;
my $owner = $$;

$SIG{PIPE} = 'IGNORE';
# Ctrl-C or a TERM from the harness: exit through END so servers are stopped and databases dropped.
$SIG{INT} = $SIG{TERM} = sub { Test::More::diag("CxTest: caught signal, cleaning up"); exit 130 };

# ---------------------------------------------------------------------------------------------------
# Services

sub services_cmd(@args) {
    my $script = "$SRCDIR/scripts/services";
    my $out = `'$script' @args '$SVC_DIR' $MYSQL_PORT $REDIS_PORT 2>&1`;
    croak "CxTest: scripts/services @args failed (exit " . ($? >> 8) . "): $out" if $?;
    return $out;
}

# services_up -- lock, start the shared test services, flush Redis. Once per test process.
sub services_up {
    return if $lock_fh;
    make_path($SVC_DIR);
    open($lock_fh, '>>', "$SVC_DIR/tests.lock") or croak "CxTest: $SVC_DIR/tests.lock: $!";
    unless (flock($lock_fh, LOCK_EX | LOCK_NB)) {
        Test::More::note("CxTest: waiting for another test file to finish ($SVC_DIR/tests.lock)");
        flock($lock_fh, LOCK_EX) or croak "CxTest: flock: $!";
    }
    # A test killed while it had a service frozen (freeze_service) left it stopped: wake it first.
    for my $what (qw(mysql redis)) {
        my $pid = slurp("$SVC_DIR/$what.pid") // next;
        kill 'CONT', $1 if $pid =~ /^(\d+)/;
    }
    services_cmd('start');
    redis_cmd('FLUSHALL');
    drop_stale_databases();
}

# drop_stale_databases -- databases cx_t_<test>_<pid> left by a test process that no longer runs (killed
# before its cleanup), except those kept on purpose with CX_TEST_KEEP (marked in DIR/kept/).
sub drop_stale_databases {
    return if $ENV{CX_TEST_KEEP};
    my $dbh = root_dbh();
    for my $db (@{ $dbh->selectcol_arrayref("SHOW DATABASES LIKE 'cx\\_t\\_%'") }) {
        my ($pid) = $db =~ /^cx_t_\w+?_(\d+)(?:_\d+)?$/ or next;
        next if $pid == $$ || kill(0, $pid) || -e "$SVC_DIR/kept/$db";
        eval { $dbh->do("DROP DATABASE IF EXISTS `$db`") };
    }
}

# freeze_service -- SIGSTOP (or SIGCONT when thaw) the service's server process: it keeps its sockets
# and the kernel keeps accepting connections for it, but it answers nothing (a hung server).
sub freeze_service($what, $thaw = 0) {
    services_up();
    my $pidfile = "$SVC_DIR/$what.pid";
    open(my $fh, '<', $pidfile) or croak "CxTest: $pidfile: $!";
    chomp(my $pid = <$fh> // '');
    croak "CxTest: no pid in $pidfile" unless $pid =~ /^\d+$/;
    kill($thaw ? 'CONT' : 'STOP', $pid) or croak "CxTest: kill $pid: $!";
    if ($thaw) { CORE::delete $faults{"$what-frozen"} } else { $faults{"$what-frozen"} = $pid }
    return $pid;
}

sub stop_service($what) {
    services_up();
    $faults{$what} = 1;
    services_cmd("stop-$what");
}

sub start_service($what) {
    services_cmd("start-$what");
    CORE::delete $faults{$what};
    undef $CxTest::redis_sock if $what eq 'redis';
}

# ---------------------------------------------------------------------------------------------------
# Small utilities

# wait_until { BLOCK } TIMEOUT, WHAT -- poll BLOCK every 50 ms until it returns true; return its value, or
# false after TIMEOUT seconds (times $CX_TEST_TIMEOUT_SCALE), with a diagnostic naming WHAT.
sub wait_until : prototype(&;$$) {
    my ($code, $timeout, $what) = @_;
    $timeout = ($timeout // 30) * $SCALE;
    my $deadline = time + $timeout;
    while (1) {
        my $v = eval { $code->() };
        return $v if $v;
        if (time >= $deadline) {
            Test::More::diag(sprintf("wait_until: gave up after %.0f s waiting for %s%s", $timeout,
                $what // 'condition', $@ ? " (last error: $@)" : ''));
            return 0;
        }
        sleep 0.05;
    }
}

# wait_ok { BLOCK } TIMEOUT, NAME -- a test that passes when BLOCK becomes true within TIMEOUT seconds.
sub wait_ok : prototype(&$$) {
    my ($code, $timeout, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::More::ok(&wait_until($code, $timeout, $name), $name);
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1,
        ReuseAddr => 1) or croak "CxTest: cannot bind a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub slurp($path) {
    open(my $fh, '<', $path) or return undef;
    local $/;
    my $t = <$fh>;
    return $t;
}

sub spew($path, $text) {
    open(my $fh, '>', $path) or croak "CxTest: $path: $!";
    print $fh $text;
    close $fh or croak "CxTest: $path: $!";
}

# notify_listener -- bind a datagram socket at PATH (for NOTIFY_SOCKET) and return a sub that gives every
# sd_notify message received so far, joined by newlines.
sub notify_listener($path) {
    require IO::Socket::UNIX;
    my $sock = IO::Socket::UNIX->new(Type => Socket::SOCK_DGRAM(), Local => $path) or croak "CxTest: $path: $!";
    my @msgs;
    return sub {
        while (IO::Select->new($sock)->can_read(0)) {
            my $buf;
            $sock->recv($buf, 4096) // last;
            push @msgs, $buf;
        }
        return join "\n", @msgs;
    };
}

# proc_title -- the process title of PID (argv as the process rewrote it), or undef when gone.
sub proc_title($pid) {
    my $c = slurp("/proc/$pid/cmdline") // return undef;
    $c =~ s/\0.*//s;
    $c =~ s/\s+$//;
    return $c;
}

sub proc_stat($pid) {
    my $s = slurp("/proc/$pid/stat") // return undef;
    my $r = rindex($s, ')');
    return undef if $r < 0;
    my @f = split(' ', substr($s, $r + 2));
    # f[0] = state, f[1] = ppid, f[19] = starttime
    return { state => $f[0], ppid => $f[1], start => $f[19] };
}

# proc_alive -- PID exists and is not a zombie.
sub proc_alive($pid) {
    my $st = proc_stat($pid) // return 0;
    return $st->{state} ne 'Z' && $st->{state} ne 'X';
}

sub all_pids {
    opendir(my $d, '/proc') or return ();
    return grep { /^\d+$/ } readdir $d;
}

# run_cmd -- run ARGV with a clean override environment plus ENV (undef deletes), capture stdout and
# stderr; returns {exit, status, signal, out, err, timed_out}.
sub run_cmd($opts, @argv) {
    my $tmp = $opts->{tmp} // tempdir(CLEANUP => 1);
    my $n = ++$seq;
    my ($of, $ef) = ("$tmp/cmd$n.out", "$tmp/cmd$n.err");
    my $pid = fork // croak "fork: $!";
    if (!$pid) {
        eval {
            CORE::delete @ENV{@OVERRIDE_ENV};
            my $e = $opts->{env} // {};
            for (keys %$e) { defined $e->{$_} ? ($ENV{$_} = $e->{$_}) : CORE::delete $ENV{$_} }
            open(STDIN, '<', '/dev/null');
            open(STDOUT, '>', $of);
            open(STDERR, '>', $ef);
            exec { $argv[0] } @argv;
        };
        POSIX::_exit(127);
    }
    return { pid => $pid, out_file => $of, err_file => $ef } if $opts->{background};
    return finish_cmd({ pid => $pid, out_file => $of, err_file => $ef }, $opts->{timeout} // 60);
}

# poll_cmd -- the result of a run_cmd(background => 1) child if it has exited, else undef.
sub poll_cmd($h) {
    return undef unless waitpid($h->{pid}, WNOHANG) == $h->{pid};
    return cmd_result($h, $?, 0);
}

# finish_cmd -- wait for a run_cmd(background => 1) child; kill it after TIMEOUT seconds.
sub finish_cmd($h, $timeout = 60) {
    my $deadline = time + $timeout * $SCALE;
    my $timed_out = 0;
    while (1) {
        my $r = waitpid($h->{pid}, WNOHANG);
        last if $r == $h->{pid} || $r < 0;
        if (time > $deadline) {
            kill 'KILL', $h->{pid};
            waitpid($h->{pid}, 0);
            $timed_out = 1;
            last;
        }
        sleep 0.02;
    }
    return cmd_result($h, $?, $timed_out);
}

sub cmd_result($h, $st, $timed_out) {
    # A sanitizer report of a command (conduix-cp token, migrate, check-config …) fails the test file,
    # as one in the server log does (see cleanup).
    my $err = slurp($h->{err_file}) // '';
    if ($err =~ /^(.*(?:ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:).*)$/m) {
        Test::More::diag("CxTest: sanitizer report from command pid $h->{pid}: $1");
        $sanitizer_reports++;
    }
    return {
        status => $st,
        exit => WIFEXITED($st) ? WEXITSTATUS($st) : -1,
        signal => WIFSIGNALED($st) ? WTERMSIG($st) : 0,
        out => slurp($h->{out_file}) // '',
        err => $err,
        timed_out => $timed_out,
    };
}

# jwt_hs256 -- an HS256 token of CLAIMS signed with SECRET (for tokens the binary will not mint: expired,
# foreign secret, wrong issuer).
sub jwt_hs256($secret, $claims, $header = { alg => 'HS256', typ => 'JWT' }) {
    my $si = encode_base64url($JSON->encode($header)) . '.' . encode_base64url($JSON->encode($claims));
    return "$si." . encode_base64url(hmac_sha256($si, $secret));
}

sub jwt_decode($token) {
    my @p = split(/\./, $token);
    return undef unless @p == 3;
    return eval { { header => decode_json(decode_base64url($p[0])), claims => decode_json(decode_base64url($p[1])) } };
}

# ---------------------------------------------------------------------------------------------------
# Redis: a tiny RESP client on one kept connection to the test Redis.

our $redis_sock;

sub redis_read_reply($sock) {
    my $line = <$sock>;
    croak "CxTest: redis: connection closed" unless defined $line;
    $line =~ s/\r\n$//;
    my ($t, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $t eq '+';
    croak "CxTest: redis error: $rest" if $t eq '-';
    return 0 + $rest if $t eq ':';
    if ($t eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length($buf) < $rest + 2) {
            my $n = read($sock, $buf, $rest + 2 - length($buf), length($buf));
            croak "CxTest: redis: short read" unless $n;
        }
        return substr($buf, 0, $rest);
    }
    if ($t eq '*') {
        return undef if $rest < 0;
        return [map { redis_read_reply($sock) } 1 .. $rest];
    }
    croak "CxTest: redis: bad reply '$line'";
}

sub redis_cmd(@cmd) {
    my $req = '*' . scalar(@cmd) . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @cmd);
    for my $try (1, 2) {
        $redis_sock //= IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $REDIS_PORT, Proto => 'tcp',
            Timeout => 5) or croak "CxTest: redis 127.0.0.1:$REDIS_PORT: $!";
        my $r = eval {
            print {$redis_sock} $req or die "CxTest: redis: write: $!\n";
            [redis_read_reply($redis_sock)];
        };
        return $r->[0] if $r;
        my $err = $@;
        croak $err if $err =~ /^CxTest: redis error:/;
        undef $redis_sock;    # a stale connection (Redis restarted): reconnect once
        croak $err if $try == 2;
    }
}

# redis_monitor -- the commands the test Redis executes for $seconds (MONITOR, on a connection of its
# own), those matching $re: a list of MONITOR lines.
sub redis_monitor($seconds, $re) {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $REDIS_PORT, Proto => 'tcp', Timeout => 5)
        or croak "CxTest: redis 127.0.0.1:$REDIS_PORT: $!";
    print {$sock} "MONITOR\r\n" or croak "CxTest: redis: write: $!";
    my ($buf, @seen) = ('');
    my $sel = IO::Select->new($sock);
    my $end = Time::HiRes::time() + $seconds;
    while ((my $left = $end - Time::HiRes::time()) > 0) {
        next unless $sel->can_read($left);
        last unless sysread($sock, $buf, 65536, length $buf);
        while ($buf =~ s/^([^\n]*)\n//) {
            my $line = $1;
            push @seen, $line if $line =~ $re;
        }
    }
    close $sock;
    return @seen;
}

# ---------------------------------------------------------------------------------------------------
# Instances

my @SECTION_ORDER = qw(server database redis auth scheduler agents commands cors rate_limit logging migrations);

sub test_name {
    my $n = basename($0);
    $n =~ s/\.t$//;
    $n =~ s/[^A-Za-z0-9]+/_/g;
    return lc substr($n, 0, 24);
}

sub random_secret($len = 40) {
    my @c = ('a' .. 'z', 'A' .. 'Z', '0' .. '9');
    return 's' . join('', map { $c[int rand @c] } 2 .. $len);
}

# new -- a fresh database, temp dir, port and config. Options:
#   config => {'dotted.key' => value, ...}   set (undef deletes) keys of the generated YAML
#   yaml => "text"                           appended verbatim (new sections only)
#   workers => N                             server.workers (default 2)
#   env => {NAME => value}                   extra environment of every server and command run
#   create_db => 0                           do not create the database
#   db => NAME                               use the existing database NAME (another instance's: two replicas)
sub new($class, %o) {
    services_up();
    my $self = bless { owner => $$, env => $o{env} // {}, yaml_extra => $o{yaml} // '' }, $class;
    $self->{tmp} = tempdir("cx-t-XXXXXX", TMPDIR => 1, CLEANUP => !$ENV{CX_TEST_KEEP});
    my $n = ++$seq;
    state $ninst = 0;
    $ninst++;
    $self->{db} = $o{db} // 'cx_t_' . test_name() . "_$$" . ($ninst > 1 ? "_$ninst" : '');
    $self->{port} = free_port();
    $self->{secret} = random_secret(40);
    $self->{cfg_file} = "$self->{tmp}/config.yaml";
    $self->{log_file} = "$self->{tmp}/server.log";
    $self->{pidfile} = "$self->{tmp}/conduix-cp.pid";
    $self->{config} = {
        server => { host => '127.0.0.1', port => $self->{port}, workers => $o{workers} // 2,
            shutdown_timeout => '10s', pidfile => $self->{pidfile} },
        # query_timeout: 5 s, not the default 800 ms, so that a statement slowed down by a loaded machine
        # does not open the breaker (503 DATABASE_UNAVAILABLE) in a test about something else; the tests of
        # the breaker (t/80, chaos 4) set the default back.
        database => { host => '127.0.0.1', port => $MYSQL_PORT, user => $DB_USER, password => $DB_PASSWORD,
            name => $self->{db}, connect_timeout => '2s', query_timeout => '5s' },
        redis => { host => '127.0.0.1', port => $REDIS_PORT, timeout => '500ms',
            circuit_breaker => { failures => 3, cooldown => '1s', half_open_successes => 1 } },
        auth => { jwt_secret => $self->{secret} },
        logging => { level => 'info', format => 'json' },
        migrations => { auto => 'true' },    # the migrations built into the binary
        agents => { heartbeat_timeout => '30s', monitor_interval => '1s' },
        rate_limit => { enabled => 'false' },    # the load tests send thousands of requests from one address
    };
    $self->set_config(%{ $o{config} // {} });
    if ($o{create_db} // !defined $o{db}) {
        $self->root_dbh->do("DROP DATABASE IF EXISTS `$self->{db}`");
        $self->root_dbh->do("CREATE DATABASE `$self->{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
        $self->{db_created} = 1;
    }
    $self->write_config;
    push @instances, $self;
    Test::More::note("CxTest: $self->{db} on 127.0.0.1:$self->{port}, files in $self->{tmp}");
    return $self;
}

# replica -- another instance of the same deployment as $s: its own port, temp dir, config and log, on
# $s's database and with its JWT secret (a token of one is good on the other). Options as for new.
sub replica($s, %o) {
    my $r = CxTest->new(%o, create_db => 0);
    $r->{db} = $s->{db};
    $r->{secret} = $s->{secret};
    $r->set_config('database.name' => $s->{db}, 'auth.jwt_secret' => $s->{secret});
    $r->write_config;
    return $r;
}

sub tmp($s) { $s->{tmp} }
sub port($s) { $s->{port} }
sub db_name($s) { $s->{db} }
sub secret($s) { $s->{secret} }
sub config_file($s) { $s->{cfg_file} }
sub pidfile($s) { $s->{pidfile} }
sub log_file($s) { $s->{log_file} }
sub base_url($s) { "http://127.0.0.1:$s->{port}" }

# set_config -- set dotted keys of the generated config (undef deletes); call write_config to save.
sub set_config($s, %kv) {
    for my $k (keys %kv) {
        my @p = split(/\./, $k);
        my $last = pop @p;
        my $h = $s->{config};
        $h = ($h->{$_} //= {}) for @p;
        if (defined $kv{$k}) { $h->{$last} = $kv{$k} } else { CORE::delete $h->{$last} }
    }
    $s->{port} = $s->{config}{server}{port} if $s->{config}{server}{port};
    return $s;
}

sub get_config($s, $k) {
    my $h = $s->{config};
    for (split /\./, $k) { return undef unless ref $h eq 'HASH'; $h = $h->{$_} }
    return $h;
}

sub yaml_scalar($v) {
    return '""' if $v eq '';
    return $v if $v =~ m{^[A-Za-z0-9_./+][A-Za-z0-9_./+-]*$};
    (my $q = $v) =~ s/(["\\])/\\$1/g;
    $q =~ s/\n/\\n/g;
    return qq{"$q"};
}

sub yaml_emit($h, $indent) {
    my $pad = ' ' x $indent;
    my $out = '';
    my %rank = map { $SECTION_ORDER[$_] => $_ } 0 .. $#SECTION_ORDER;
    my @keys = sort { ($rank{$a} // 99) <=> ($rank{$b} // 99) || $a cmp $b } keys %$h;
    for my $k (@keys) {
        my $v = $h->{$k};
        if (ref $v eq 'HASH') {
            $out .= "$pad$k:\n" . yaml_emit($v, $indent + 2);
        } elsif (ref $v eq 'ARRAY') {
            if (!@$v) { $out .= "$pad$k: []\n"; next }
            $out .= "$pad$k:\n";
            for my $e (@$v) {
                if (ref $e eq 'HASH') {
                    my $sub = yaml_emit($e, $indent + 4);
                    $sub =~ s/^ {$indent}    /$pad  - /;
                    $out .= $sub;
                } else {
                    $out .= "$pad  - " . yaml_scalar($e) . "\n";
                }
            }
        } else {
            $out .= "$pad$k: " . yaml_scalar($v) . "\n";
        }
    }
    return $out;
}

# config_text -- the YAML the instance writes (generated keys, then the raw yaml option).
sub config_text($s) {
    my $t = "# written by t/lib/CxTest.pm for $0\n" . yaml_emit($s->{config}, 0);
    $t .= $s->{yaml_extra} . ($s->{yaml_extra} =~ /\n\z/ ? '' : "\n") if length $s->{yaml_extra};
    return $t;
}

# write_config -- save the config file, or TEXT verbatim when given.
sub write_config($s, $text = undef) {
    spew($s->{cfg_file}, $text // $s->config_text);
    return $s->{cfg_file};
}

# ---------------------------------------------------------------------------------------------------
# The server

sub server_env($s, $extra = {}) {
    return { %{ $s->{env} }, %$extra };
}

# start -- run `serve -c CFG` in the background (its own process group, stderr and stdout appended to
# server.log) and wait until GET /health answers 200. Options: env => {...}, args => [...],
# port => N (where to poll; default: env PORT or the config's port), wait => 0 (do not wait),
# timeout => seconds for /health (30), wrap => [argv] run the server under it (e.g. valgrind …).
sub start($s, %o) {
    croak "CxTest: server already running (pid $s->{pid})" if $s->{pid} && $s->master_alive;
    my $env = $s->server_env($o{env} // {});
    $s->{port} = $o{port} // $env->{PORT} // $s->{config}{server}{port};
    my @argv = (@{ $o{wrap} // [] }, $BIN, 'serve', '-c', $s->{cfg_file}, @{ $o{args} // [] });
    my $pid = fork // croak "fork: $!";
    if (!$pid) {
        eval {
            setpgrp(0, 0);
            die_with_parent();
            CORE::delete @ENV{@OVERRIDE_ENV};
            for (keys %$env) { defined $env->{$_} ? ($ENV{$_} = $env->{$_}) : CORE::delete $ENV{$_} }
            open(STDIN, '<', '/dev/null');
            open(STDOUT, '>>', $s->{log_file});
            open(STDERR, '>>', $s->{log_file});
            exec { $argv[0] } @argv;
        };
        POSIX::_exit(127);
    }
    $s->{pid} = $pid;
    $s->{exit_status} = undef;
    $s->{known_children} = {};
    return $s if defined $o{wait} && !$o{wait};
    my $timeout = ($o{timeout} // 30) * $SCALE;
    my $deadline = time + $timeout;
    my $ua = HTTP::Tiny->new(timeout => 2, keep_alive => 0);
    while (1) {
        my $r = $ua->get($s->base_url . '/health');
        if ($r->{status} == 200) {
            $s->remember_children;
            return $s;
        }
        if (!$s->master_alive) {
            my $st = $s->{exit_status};
            croak sprintf("CxTest: the server exited (status %s) before /health answered 200\n%s",
                $st // '?', $s->log_tail(40));
        }
        if (time > $deadline) {
            croak sprintf("CxTest: GET /health did not answer 200 within %.0f s (last: %s %s)\n%s", $timeout,
                $r->{status}, substr($r->{content} // '', 0, 200), $s->log_tail(40));
        }
        sleep 0.1;
    }
}

# die_with_parent -- in a forked child: SIGTERM when the test process dies, even by SIGKILL, so that no
# server outlives its test (prctl PR_SET_PDEATHSIG survives exec). Best effort.
sub die_with_parent {
    my $nr = eval { require 'sys/syscall.ph'; &SYS_prctl() } // return;
    syscall($nr, 1, 15);    # PR_SET_PDEATHSIG = 1, SIGTERM = 15
}

# wait_exit -- wait up to TIMEOUT s for the master to exit; its raw wait status, or undef.
sub wait_exit($s, $timeout = 30) {
    return $s->{exit_status} unless $s->{pid};
    my $deadline = time + $timeout * $SCALE;
    while (1) {
        return $s->{exit_status} unless $s->master_alive;
        return undef if time > $deadline;
        sleep 0.05;
    }
}

# master_alive -- reaps the master when it has exited (keeps its wait status in exit_status).
sub master_alive($s) {
    return 0 unless $s->{pid};
    return 0 if defined $s->{exit_status};
    my $r = waitpid($s->{pid}, WNOHANG);
    if ($r == $s->{pid}) {
        $s->{exit_status} = $?;
        return 0;
    }
    return 0 if $r < 0;
    return 1;
}

sub master_pid($s) { $s->master_alive ? $s->{pid} : undef }

# exit_code -- the master's exit code (or 128+signal), once it has exited.
sub exit_code($s) {
    my $st = $s->{exit_status} // return undef;
    return WIFEXITED($st) ? WEXITSTATUS($st) : 128 + WTERMSIG($st);
}

# children -- processes whose parent is the master: list of {pid, title}, by pid.
sub children($s, $ppid = undef) {
    $ppid //= $s->{pid} // return ();
    my @c;
    for my $pid (all_pids()) {
        my $st = proc_stat($pid) // next;
        next unless $st->{ppid} == $ppid && $st->{state} ne 'Z';
        my $t = proc_title($pid) // next;
        push @c, { pid => 0 + $pid, title => $t, start => $st->{start} };
    }
    @c = sort { $a->{pid} <=> $b->{pid} } @c;
    $s->{known_children}{"$_->{pid}:$_->{start}"} = $_ for @c;
    return @c;
}

sub remember_children($s) { $s->children; return }

# titles -- {title => [pids]} of the master's children.
sub titles($s) {
    my %t;
    push @{ $t{ $_->{title} } }, $_->{pid} for $s->children;
    return \%t;
}

sub worker_pids($s) { map { $_->{pid} } grep { $_->{title} =~ /^conduix-cp: worker \d+$/ } $s->children }

# child_pid -- the pid of the child titled "conduix-cp: NAME" (e.g. "scheduler", "worker 1"), or undef.
sub child_pid($s, $name) {
    my @p = map { $_->{pid} } grep { $_->{title} eq "conduix-cp: $name" } $s->children;
    return $p[0];
}

# wait_children -- wait until the master has exactly its N workers (0..N-1), a scheduler and an hbmon.
sub wait_children($s, $timeout = 30) {
    my $n = $s->{config}{server}{workers} || 2;
    return wait_until {
        my $t = $s->titles;
        for my $i (0 .. $n - 1) { return 0 unless @{ $t->{"conduix-cp: worker $i"} // [] } == 1 }
        return 0 if grep { /^conduix-cp: worker (\d+)$/ && $1 >= $n } keys %$t;
        return @{ $t->{'conduix-cp: scheduler'} // [] } == 1 && @{ $t->{'conduix-cp: hbmon'} // [] } == 1;
    } $timeout, "$n workers, scheduler and hbmon";
}

# signal -- send SIG to the master.
sub signal($s, $sig) {
    croak "CxTest: no server" unless $s->{pid};
    return kill $sig, $s->{pid};
}

# stop -- SIGTERM to the master and wait for it (shutdown_timeout + 20 s); returns the raw wait status
# (0 = exited with 0), or -1 if it had to be killed with SIGKILL.
sub stop($s, %o) {
    return $s->{exit_status} unless $s->{pid} && $s->master_alive;
    $s->remember_children;
    kill $o{signal} // 'TERM', $s->{pid};
    my $st = $s->wait_exit($o{timeout} // 30);
    return $st if defined $st;
    Test::More::diag("CxTest: master $s->{pid} still alive after SIGTERM; killing it");
    kill 'KILL', $s->{pid};
    $s->wait_exit(10);
    return -1;
}

# kill9 -- SIGKILL the master (its children are left to exit by themselves).
sub kill9($s) {
    return unless $s->{pid} && $s->master_alive;
    $s->remember_children;
    kill 'KILL', $s->{pid};
    $s->wait_exit(10);
}

# leftover_children -- children seen during this run that are still alive (same pid and start time).
# leftover_children -- the children seen so far that still run (not zombies); in scalar context how many
# (so `wait_ok { !$s->leftover_children } …` waits: a sort in scalar context is undefined and was false).
sub leftover_children($s) {
    my @left;
    for my $c (values %{ $s->{known_children} // {} }) {
        my $st = proc_stat($c->{pid}) // next;
        next if $st->{start} ne $c->{start} || $st->{state} eq 'Z';
        push @left, $c;
    }
    return wantarray ? sort { $a->{pid} <=> $b->{pid} } @left : scalar @left;
}

sub log($s) { slurp($s->{log_file}) // '' }

sub log_tail($s, $n = 30) {
    my @l = split /\n/, $s->log;
    @l = @l[-$n .. -1] if @l > $n;
    return join('', map { "    | $_\n" } @l);
}

# log_lines -- the server log's lines parsed as JSON (lines that are not JSON are skipped).
sub log_lines($s) {
    my @o;
    for (split /\n/, $s->log) {
        next unless /^\s*\{/;
        my $o = eval { decode_json($_) } // next;
        push @o, $o if ref $o eq 'HASH';
    }
    return @o;
}

# answered_by -- the pid of the worker that answered the request with this X-Request-ID (its access log
# line), waiting a little for the line to be written; undef when there is none.
sub answered_by($s, $request_id) {
    my $pid;
    wait_until {
        my $fh;
        return 0 unless open($fh, '<', $s->{log_file});
        seek($fh, $s->{access_off} // 0, 0);
        while (my $l = <$fh>) {
            last unless $l =~ /\n\z/;    # a line still being written: read again next time
            $s->{access_off} = tell($fh);
            next unless $l =~ /"type":"access"/ && $l =~ /"request_id":"([^"]+)"/;
            my $rid = $1;
            $s->{answered}{$rid} = $1 if $l =~ /"pid":(\d+)/;
        }
        close $fh;
        return defined($pid = $s->{answered}{$request_id});
    } 5;
    return $pid;
}

# each_worker -- CODE(response) holds for the answers of every worker: sends request (a CODE that takes
# an X-Request-ID and returns a response of ->request) until each current worker has answered at least
# $o{times} (default 2) times, told apart by the access log. 0 at the first answer for which check fails
# (with a diag naming it), or when a worker is not reached within $o{max} (default 200) requests. A
# check of fresh connections alone may never reach a worker (the kernel's accept queue favours one).
sub each_worker($s, $request, $check, %o) {
    my %want = map { $_ => $o{times} // 2 } $s->worker_pids;
    for my $n (1 .. $o{max} // 200) {
        my $rid = sprintf('each-%d-%d-%d', $$, ++$seq, $n);
        my $r = $request->($rid);
        my $pid = $s->answered_by($rid) // 'unknown';
        unless ($check->($r)) {
            Test::More::diag("each_worker: worker $pid answered $r->{status}: $r->{content}") unless $o{quiet};
            return 0;
        }
        delete $want{$pid} if exists $want{$pid} && --$want{$pid} <= 0;
        return 1 unless %want;
    }
    Test::More::diag('each_worker: no answer from worker(s) ' . join(', ', sort keys %want)) unless $o{quiet};
    return 0;
}

# ---------------------------------------------------------------------------------------------------
# Commands of the binary

# cli -- run `conduix-cp SUBCOMMAND -c CFG ARGS...` with the instance's environment; see run_cmd.
sub cli($s, $sub, @args) {
    my $o = ref $args[-1] eq 'HASH' ? pop @args : {};
    my @cfg = exists $o->{config} ? (defined $o->{config} ? ('-c', $o->{config}) : ()) : ('-c', $s->{cfg_file});
    return run_cmd({ tmp => $s->{tmp}, env => $s->server_env($o->{env} // {}), timeout => $o->{timeout},
        background => $o->{background} }, $BIN, $sub, @cfg, @args);
}

# token -- a JWT minted by `conduix-cp token` with this config (role => admin, sub => 'cx-test').
sub token($s, %o) {
    my @a = ('--role', $o{role} // 'admin', '--sub', $o{sub} // 'cx-test');
    push @a, '--email', $o{email} if defined $o{email};
    push @a, '--ttl', $o{ttl} if defined $o{ttl};
    my $r = $s->cli('token', @a);
    croak "CxTest: conduix-cp token @a failed (exit $r->{exit}): $r->{err}" if $r->{exit} != 0;
    (my $t = $r->{out}) =~ s/\s+//g;
    return $t;
}

sub admin_token($s) { $s->{admin_token} //= $s->token(role => 'admin', sub => 'cx-test-admin') }

# claims -- standard claims for a hand-made token (iss conduix-cp, one hour), overridden by %o.
sub claims($s, %o) {
    my $now = time;
    return { sub => 'cx-test', role => 'admin', iat => int($now), exp => int($now) + 3600,
        jti => sprintf('cxt-%d-%d', $$, ++$seq), iss => 'conduix-cp', %o };
}

# ---------------------------------------------------------------------------------------------------
# HTTP

sub ua($s, %o) {
    return HTTP::Tiny->new(timeout => $o{timeout} // 30, keep_alive => $o{keep_alive} // 0,
        agent => 'cx-test/1');
}

# request -- METHOD PATH with options: headers => {}, body => string or ref (JSON-encoded), token => JWT,
# content_type => type (default application/json when there is a body), ua => HTTP::Tiny.
sub request($s, $method, $path, %o) {
    my %h = %{ $o{headers} // {} };
    $h{Authorization} = "Bearer $o{token}" if defined $o{token};
    my %args = (headers => \%h);
    if (defined $o{body}) {
        $args{content} = ref $o{body} ? $JSON->encode($o{body}) : $o{body};
        $h{'Content-Type'} //= $o{content_type} // 'application/json';
    }
    my $ua = $o{ua} // ($s->{ua} //= $s->ua);
    my $t0 = time;
    my $r = $ua->request($method, $s->base_url . $path, \%args);
    my $res = { status => $r->{status}, reason => $r->{reason}, headers => $r->{headers} // {},
        content => $r->{content} // '', elapsed => time - $t0 };
    $res->{json} = eval { $JSON->decode($res->{content}) } if length $res->{content};
    $res->{request_id} = $res->{headers}{'x-request-id'};
    return $res;
}

sub split_opts(@a) {
    my (%h, %o);
    while (my ($k, $v) = splice(@a, 0, 2)) {
        if ($k =~ /^(token|ua|body|content_type|headers)$/) { $o{$k} = $v } else { $h{$k} = $v }
    }
    $o{headers} = { %{ $o{headers} // {} }, %h };
    return %o;
}

sub get($s, $path, @h) { $s->request('GET', $path, split_opts(@h)) }
sub delete($s, $path, @h) { $s->request('DELETE', $path, split_opts(@h)) }
sub post($s, $path, $body = undef, @h) { $s->request('POST', $path, split_opts(@h), body => $body) }
sub put($s, $path, $body = undef, @h) { $s->request('PUT', $path, split_opts(@h), body => $body) }

sub auth_opts($s, @h) {
    my %o = split_opts(@h);
    $o{token} //= $s->admin_token;
    return %o;
}
sub auth_get($s, $path, @h) { $s->request('GET', $path, $s->auth_opts(@h)) }
sub auth_delete($s, $path, @h) { $s->request('DELETE', $path, $s->auth_opts(@h)) }
sub auth_post($s, $path, $body = undef, @h) { $s->request('POST', $path, $s->auth_opts(@h), body => $body) }
sub auth_put($s, $path, $body = undef, @h) { $s->request('PUT', $path, $s->auth_opts(@h), body => $body) }

# burst -- requests sent together: each ({method, path, body (string or ref, JSON-encoded), token,
# headers => {}}) on a connection of its own, every one written before any answer is read, so that a
# worker reads many of them in one turn of its loop. The answers in order: {status, headers (lower-case
# names), json, request_id}.
sub burst($s, @reqs) {
    my @socks = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->{port}, Proto => 'tcp') or croak "CxTest: connect: $!" } @reqs;
    for my $i (0 .. $#reqs) {
        my $q = $reqs[$i];
        my %h = (Host => 'x', Connection => 'close', %{ $q->{headers} // {} });
        $h{Authorization} = "Bearer $q->{token}" if defined $q->{token};
        my $body = defined $q->{body} ? (ref $q->{body} ? $JSON->encode($q->{body}) : $q->{body}) : '';
        if (length $body) {
            $h{'Content-Type'} //= 'application/json';
            $h{'Content-Length'} = length $body;
        } elsif (($q->{method} // 'GET') ne 'GET') {
            $h{'Content-Length'} = 0;
        }
        $socks[$i]->print(($q->{method} // 'GET') . " $q->{path} HTTP/1.1\r\n" . join('', map { "$_: $h{$_}\r\n" } sort keys %h) . "\r\n$body");
    }
    return map {
        local $/;
        my $sock = $_;
        my $t = <$sock> // '';
        close $sock;
        my ($head, $body) = split /\r\n\r\n/, $t, 2;
        my ($st) = ($head // '') =~ m{^HTTP/1\.1 (\d+)};
        my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\r\n/, $head // '';
        { status => $st // 0, headers => \%h, json => eval { $JSON->decode($body // '') }, request_id => $h{'x-request-id'} }
    } @socks;
}

# metric -- the value of one sample of GET /metrics (NAME with its labels, as written), or undef.
sub metric($s, $name) {
    my $m = $s->get('/metrics')->{content};
    return $m =~ /^\Q$name\E (\S+)$/m ? 0 + $1 : undef;
}

# conn -- a raw HTTP/1.1 connection to the server (CxTest::Conn), for keep-alive and malformed requests.
sub conn($s, %o) { CxTest::Conn->new('127.0.0.1', $o{port} // $s->{port}) }

# under_load -- run CODE while three clients send GET /health to the instance's port as fast as they
# can: keepalive (HTTP::Tiny, a reused connection), strict (a raw keep-alive connection, reconnecting
# only after the server said Connection: close) and close (a connection per request). Returns
# (ok, failed, reasons): the answers counted over the three, and the first failures of each.
sub under_load($s, $code) {
    my $stop = "$s->{tmp}/stop-load";
    unlink $stop;
    my @kids = map { [$_, $s->loader($_, "$s->{tmp}/load-$_", $stop)] } qw(keepalive strict close);
    sleep 1;
    $code->();
    sleep 1;
    spew($stop, '');
    waitpid($_->[1], 0) for @kids;
    my ($ok, $failed, @why) = (0, 0);
    for my $k (@kids) {
        my @l = split /\n/, (slurp("$s->{tmp}/load-$k->[0]") // "0 1\nno result\n");
        my ($o, $f) = split ' ', shift @l;
        Test::More::note("loader $k->[0]: $o ok, $f failed");
        $ok += $o;
        $failed += $f;
        push @why, map { "$k->[0]: $_" } @l;
    }
    return ($ok, $failed, @why);
}

# loader -- fork a client of MODE (see under_load) that sends GET /health until STOP_FILE exists; it
# writes "ok failed" and its first failures to OUT.
sub loader($s, $mode, $out, $stop_file) {
    my $pid = fork // croak "fork: $!";
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

# ---------------------------------------------------------------------------------------------------
# MySQL

sub root_dbh {
    require DBI;
    state $dbh;
    return $dbh if $dbh && eval { $dbh->ping };
    $dbh = DBI->connect("DBI:mysql:host=127.0.0.1;port=$MYSQL_PORT", $DB_USER, $DB_PASSWORD,
        { RaiseError => 1, PrintError => 0, AutoCommit => 1 })
        or croak "CxTest: cannot connect to MariaDB on 127.0.0.1:$MYSQL_PORT: $DBI::errstr";
    return $dbh;
}

# dbh -- DBI handle on the instance's database (reconnects after a MariaDB restart).
sub dbh($s) {
    require DBI;
    return $s->{dbh} if $s->{dbh} && eval { $s->{dbh}->ping };
    $s->{dbh} = DBI->connect("DBI:mysql:database=$s->{db};host=127.0.0.1;port=$MYSQL_PORT", $DB_USER,
        $DB_PASSWORD, { RaiseError => 1, PrintError => 0, AutoCommit => 1, mysql_enable_utf8mb4 => 1 })
        or croak "CxTest: cannot connect to $s->{db}: $DBI::errstr";
    return $s->{dbh};
}

# sql -- run QUERY with BIND values: rows as an arrayref of hashrefs for a SELECT, else the row count.
sub sql($s, $q, @bind) {
    my $sth = $s->dbh->prepare($q);
    my $n = $sth->execute(@bind);
    return $sth->{NUM_OF_FIELDS} ? $sth->fetchall_arrayref({}) : $n;
}

sub tables($s) {
    my $rows = $s->sql('SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ?', $s->{db});
    return sort map { $_->{t} // $_->{T} // $_->{TABLE_NAME} } @$rows;
}

# ---------------------------------------------------------------------------------------------------
# Redis and faults

sub redis($s, @cmd) { redis_cmd(@cmd) }
sub stop_mysql($s) { stop_service('mysql') }
sub start_mysql($s) { start_service('mysql') }
sub stop_redis($s) { stop_service('redis') }
sub freeze_mysql($s) { freeze_service('mysql') }
sub thaw_mysql($s) { freeze_service('mysql', 1) }
sub freeze_redis($s) { freeze_service('redis') }
sub thaw_redis($s) { freeze_service('redis', 1) }
sub start_redis($s) { start_service('redis') }

# ---------------------------------------------------------------------------------------------------
# Cleanup

sub cleanup($s) {
    return if $s->{cleaned} || $s->{owner} != $$;
    $s->{cleaned} = 1;
    if ($s->{pid} && $s->master_alive) {
        $s->remember_children;
        kill 'TERM', $s->{pid};
        unless (defined $s->wait_exit(15)) {
            kill 'KILL', $s->{pid};
            $s->wait_exit(5);
        }
    }
    if ($s->{pid}) {
        my @left = $s->leftover_children;
        kill 'KILL', map { $_->{pid} } @left if @left;
        kill 'KILL', -$s->{pid};    # its process group: anything it forked that we did not see
    }
    # A sanitizer report anywhere in the server's output fails the test file, even when every check
    # passed: under --enable-sanitizers a child that hits one aborts and is respawned, which the
    # checks alone might not notice.
    my @files = grep { defined && -s } ($s->{log_file}, $s->get_config('logging.file'));
    for my $f (@files) {
        my $text = slurp($f) // '';
        if ($text =~ /^(.*(?:ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:).*)$/m) {
            Test::More::diag("CxTest: sanitizer report in $f: $1");
            $sanitizer_reports++;
        }
    }
    my $failed = !Test::More->builder->is_passing || $sanitizer_reports;
    if ($failed && -s $s->{log_file}) {
        # the server's error lines first (the tail of a busy server is access lines), at most 20
        my @errors = grep { /"level":"error"/ } split /\n/, $s->log;
        @errors = @errors[0 .. 19] if @errors > 20;
        Test::More::diag("error lines of the server log of $s->{db}:\n" . join('', map { "    | $_\n" } @errors)) if @errors;
        Test::More::diag("server log of $s->{db} ($s->{log_file}):\n" . $s->log_tail(30));
    }
    if ($ENV{CX_TEST_KEEP}) {
        if ($s->{db_created}) {
            make_path("$SVC_DIR/kept");
            spew("$SVC_DIR/kept/$s->{db}", "$s->{tmp}\n");
            Test::More::diag("CX_TEST_KEEP: kept database $s->{db} and $s->{tmp}; removing"
                . " $SVC_DIR/kept/$s->{db} lets the next test run drop the database");
        } else {
            Test::More::diag("CX_TEST_KEEP: kept $s->{tmp}");
        }
        return;
    }
    if ($s->{db_created}) {
        undef $s->{dbh};
        eval { root_dbh()->do("DROP DATABASE IF EXISTS `$s->{db}`") };
    }
}

sub DESTROY($s) { $s->cleanup if $s->{owner} && $s->{owner} == $$ }

END {
    if ($$ == $owner) {
        my $rc = $?;
        $_->cleanup for @instances;
        @instances = ();
        for my $what (grep { /-frozen$/ } sort keys %faults) {
            Test::More::diag("CxTest: thawing $what by this test");
            kill 'CONT', $faults{$what};
            CORE::delete $faults{$what};
        }
        for my $what (sort keys %faults) {
            Test::More::diag("CxTest: restarting $what, stopped by this test");
            eval { start_service($what) };
        }
        $? = $rc || ($sanitizer_reports ? 1 : 0);
    }
}

# ---------------------------------------------------------------------------------------------------
# CxTest::Conn -- one raw HTTP/1.1 connection; requests are keep-alive unless told otherwise.

package CxTest::Conn;

use v5.36;
use Carp qw(croak);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(time);

sub new($class, $host, $port) {
    my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => 10)
        or croak "CxTest::Conn: connect $host:$port: $!";
    $sock->autoflush(1);
    return bless { sock => $sock, host => "$host:$port", buf => '' }, $class;
}

sub sock($c) { $c->{sock} }

# send_raw -- write bytes as they are.
sub send_raw($c, $bytes) {
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($c->{sock}, $bytes, length($bytes) - $off, $off);
        croak "CxTest::Conn: write: $!" unless defined $n;
        $off += $n;
    }
}

# request_text -- the bytes of a request (METHOD, PATH, headers => {}, body => string).
sub request_text($c, $method, $path, %o) {
    my %h = (Host => $c->{host}, %{ $o{headers} // {} });
    $h{'Content-Length'} //= length($o{body}) if defined $o{body};
    my $t = "$method $path HTTP/1.1\r\n";
    $t .= "$_: $h{$_}\r\n" for sort keys %h;
    return $t . "\r\n" . ($o{body} // '');
}

# request -- send a request and read its response.
sub request($c, $method, $path, %o) {
    $c->send_raw($c->request_text($method, $path, %o));
    return $c->read_response(%o);
}

sub fill($c, $deadline) {
    my $sel = IO::Select->new($c->{sock});
    my $left = $deadline - time;
    return undef if $left <= 0 || !$sel->can_read($left);
    my $n = sysread($c->{sock}, $c->{buf}, 65536, length $c->{buf});
    return $n;    # 0 = EOF, undef = error
}

# read_response -- {status, headers (lowercase names), content, json, closed (peer closed or said close),
# no_length (neither Content-Length nor chunked)}; status 0 with error on failure.
sub read_response($c, %o) {
    my $deadline = time + ($o{timeout} // 30);
    my $head;
    while (1) {
        my $i = index($c->{buf}, "\r\n\r\n");
        if ($i >= 0) {
            $head = substr($c->{buf}, 0, $i);
            substr($c->{buf}, 0, $i + 4, '');
            last;
        }
        my $n = $c->fill($deadline);
        return { status => 0, error => defined $n ? ($n == 0 ? 'connection closed' : 'timeout') : "read: $!",
            headers => {}, content => '' } unless $n;
    }
    my ($sl, @hl) = split /\r\n/, $head;
    my ($status, $reason) = $sl =~ m{^HTTP/1\.[01] (\d{3}) ?(.*)$} or
        return { status => 0, error => "bad status line '$sl'", headers => {}, content => '' };
    my %h;
    for (@hl) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }
    my $res = { status => 0 + $status, reason => $reason, headers => \%h };
    my $body = '';
    if (($o{method} // '') eq 'HEAD' || $status == 204 || $status == 304 || $status < 200) {
    } elsif (defined $h{'content-length'}) {
        my $len = $h{'content-length'};
        while (length($c->{buf}) < $len) {
            my $n = $c->fill($deadline);
            return { %$res, status => 0, error => 'short body' } unless $n;
        }
        $body = substr($c->{buf}, 0, $len, '');
    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            my $i;
            while (($i = index($c->{buf}, "\r\n")) < 0) {
                my $n = $c->fill($deadline);
                return { %$res, status => 0, error => 'short chunk' } unless $n;
            }
            my $size = hex(substr($c->{buf}, 0, $i));
            while (length($c->{buf}) < $i + 2 + $size + 2) {
                my $n = $c->fill($deadline);
                return { %$res, status => 0, error => 'short chunk' } unless $n;
            }
            $body .= substr($c->{buf}, $i + 2, $size);
            substr($c->{buf}, 0, $i + 2 + $size + 2, '');
            last if $size == 0;
        }
        $res->{chunked} = 1;
    } else {
        $res->{no_length} = 1;
        while (1) {
            my $n = $c->fill($deadline);
            last unless $n;
        }
        $body = $c->{buf};
        $c->{buf} = '';
        $res->{closed} = 1;
    }
    $res->{content} = $body;
    $res->{json} = eval { decode_json($body) } if length $body;
    $res->{closed} = 1 if ($h{connection} // '') =~ /close/i;
    $res->{request_id} = $h{'x-request-id'};
    return $res;
}

# at_eof -- the peer has closed the connection (waits up to TIMEOUT seconds for it).
sub at_eof($c, $timeout = 0) {
    my $n = $c->fill(time + $timeout);
    return defined $n && $n == 0;
}

sub close($c) { CORE::close($c->{sock}) }

1;
