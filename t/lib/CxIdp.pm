# CxIdp -- identity providers, a stand-in web UI and a real browser for the single sign-on tests.
#
#   use CxIdp;
#   my $idp = CxIdp->idp(redirects => ["$base/api/v1/auth/callback/test"]);   # oidc-provider on 127.0.0.2
#   my $fake = CxIdp->fake;                  # the scripted provider (fakeop.mjs): $fake->control(mode => ...)
#   my $front = CxIdp->frontend(api => $base);   # /login page + /api/ proxy on 127.0.0.1
#   my $b = CxIdp::browser(start => ..., login => 'alice', landing => ...);   # chromium, JSON result
#   my $f = CxIdp::signin($start_url, login => 'alice');   # the same sign-in over plain HTTP
#
# The Node programs live in t/e2e/idp with a package.json and a committed package-lock.json. They run
# from a copy in $CX_BUILDDIR/t/e2e/idp (or /tmp/cx-e2e-$UID) where `npm ci` installs the locked packages
# when they are missing or the lock changed (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1: the browser is Debian's
# chromium). A missing node, npm or chromium fails the test: CI installs them (scripts/deps).
package CxIdp;

use v5.36;
use Carp qw(croak);
use Digest::SHA qw(sha256_hex);
use Fcntl qw(:flock);
use File::Copy qw(copy);
use File::Path qw(make_path);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use CxTest ();

my $JSON = JSON::PP->new->canonical->allow_nonref;
my @procs;

# node_dir -- the directory with the programs and their node_modules, installed once per lock.
sub node_dir {
    state $dir;
    return $dir if $dir;
    my $src = "$CxTest::SRCDIR/t/e2e/idp";
    my $d = $ENV{CX_BUILDDIR} ? "$ENV{CX_BUILDDIR}/t/e2e/idp" : "/tmp/cx-e2e-$<";
    make_path($d);
    for my $tool (qw(node npm)) {
        system("command -v $tool >/dev/null 2>&1") == 0
            or croak "CxIdp: $tool is not installed (scripts/deps installs nodejs and npm)";
    }
    open(my $lock, '>', "$d/.lock") or croak "CxIdp: $d/.lock: $!";
    flock($lock, LOCK_EX);
    opendir(my $dh, $src) or croak "CxIdp: $src: $!";
    for my $f (grep { /\.(mjs|json)$/ } readdir $dh) {
        copy("$src/$f", "$d/$f") or croak "CxIdp: copy $f: $!";
    }
    my $sum = sha256_hex(CxTest::slurp("$src/package-lock.json") // croak "CxIdp: no package-lock.json in $src");
    if ((CxTest::slurp("$d/node_modules/.cx-lock") // '') ne $sum) {
        Test::More::note("CxIdp: npm ci in $d");
        my $out = `cd '$d' && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund 2>&1`;
        $? == 0 or croak "CxIdp: npm ci failed in $d:\n$out";
        CxTest::spew("$d/node_modules/.cx-lock", $sum);
    }
    close $lock;
    return $dir = $d;
}

sub free_port_on($host) {
    my $s = IO::Socket::INET->new(LocalAddr => $host, LocalPort => 0, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or croak "CxIdp: cannot bind a port on $host: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# spawn -- run `node SCRIPT` with ENV, output to a log file, until it prints "listening <url>".
sub spawn($class, $script, %env) {
    my $dir = node_dir();
    my $log = "$dir/$script.$$." . (scalar(@procs) + 1) . '.log';
    unlink $log;
    my $pid = fork // croak "fork: $!";
    if (!$pid) {
        setpgrp(0, 0);
        CxTest::die_with_parent();
        $ENV{$_} = $env{$_} for keys %env;
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', $log);
        open(STDERR, '>>', $log);
        exec('node', "$dir/$script") or POSIX::_exit(127);
    }
    my $self = bless { pid => $pid, log => $log, script => $script }, $class;
    push @procs, $self;
    my $deadline = time + 30 * $CxTest::SCALE;
    while (1) {
        my $text = CxTest::slurp($log) // '';
        if ($text =~ /^listening (\S+)/m) {
            $self->{url} = $1;
            return $self;
        }
        croak "CxIdp: $script exited:\n$text" if waitpid($pid, WNOHANG) == $pid;
        croak "CxIdp: $script did not start within 30 s:\n$text" if time > $deadline;
        sleep 0.05;
    }
}

sub url($s) { $s->{url} }
sub log_text($s) { CxTest::slurp($s->{log}) // '' }

sub stop($s) {
    return unless $s->{pid};
    local $?; # an END block must not change the test's exit status
    kill 'TERM', $s->{pid};
    waitpid($s->{pid}, 0);
    undef $s->{pid};
}

sub DESTROY($s) { $s->stop if $s->{pid} }
END { $_->stop for @procs }

# idp -- the real OpenID provider (oidc-provider) on 127.0.0.2; client test-client / test-secret.
sub idp($class, %o) {
    my $port = free_port_on('127.0.0.2');
    return $class->spawn('idp.mjs', IDP_HOST => '127.0.0.2', IDP_PORT => $port,
        IDP_REDIRECTS => join(',', @{ $o{redirects} // [] }),
        IDP_CLIENT_ID => $o{client_id} // 'test-client', IDP_CLIENT_SECRET => $o{client_secret} // 'test-secret');
}

# fake -- the scripted provider on 127.0.0.2; client fake-client / fake-secret.
sub fake($class, %o) {
    my $port = free_port_on('127.0.0.2');
    return $class->spawn('fakeop.mjs', FAKE_HOST => '127.0.0.2', FAKE_PORT => $port);
}

# provider -- an auth.oidc entry for this fake provider: id, its client, and the callback of BASE (a
# conduix-cp's base URL) for that id; %o overrides (redirect_url …).
sub provider($s, $id, $base, %o) {
    return { provider => $id, issuer_url => $s->url, client_id => 'fake-client', client_secret => 'fake-secret',
        redirect_url => "$base/api/v1/auth/callback/$id", %o };
}

# frontend -- the stand-in web UI on 127.0.0.1, passing /api/ to API.
sub frontend($class, %o) {
    my $port = CxTest::free_port();
    return $class->spawn('frontend.mjs', FRONT_HOST => '127.0.0.1', FRONT_PORT => $port, API => $o{api});
}

sub control($s, %c) {
    my $r = HTTP::Tiny->new(timeout => 10)->post("$s->{url}/control",
        { headers => { 'Content-Type' => 'application/json' }, content => $JSON->encode(\%c) });
    croak "CxIdp: control: $r->{status} $r->{content}" unless $r->{success};
}

sub stats($s) {
    my $r = HTTP::Tiny->new(timeout => 10)->get("$s->{url}/stats");
    return $JSON->decode($r->{content});
}

# browser -- run browser.mjs with the options; its JSON result ({ok, url, token, me, error, cookies}).
sub browser(%o) {
    my $dir = node_dir();
    my $arg = $JSON->encode(\%o);
    $arg =~ s/'/'\\''/g;
    my $out = `cd '$dir' && node browser.mjs '$arg' 2>&1`;
    my ($line) = $out =~ /^(\{.*\})\s*$/m;
    my $res = defined $line ? eval { $JSON->decode($line) } : undef;
    return $res // { ok => 0, error => "browser.mjs printed no result: $out" };
}

# ---------------------------------------------------------------------------------------------------
# A sign-in over plain HTTP: a cookie jar per host (cookies ignore ports) and redirects followed by hand.

package CxIdp::Jar;

use v5.36;

sub new($class) { bless { c => {} }, $class }

sub host_of($url) { ($url =~ m{^https?://([^/:]+)})[0] // '' }

sub take($j, $url, $headers) {
    my $sc = $headers->{'set-cookie'} // return;
    for my $line (ref $sc ? @$sc : ($sc)) {
        my ($nv, @attrs) = split /;\s*/, $line;
        my ($n, $v) = split /=/, $nv, 2;
        my $del = grep { /^max-age=0$/i || /^expires=.*1970/i } @attrs;
        if ($del || !defined $v || $v eq '') { delete $j->{c}{ host_of($url) }{$n} }
        else { $j->{c}{ host_of($url) }{$n} = $v }
    }
}

sub header($j, $url) {
    my $c = $j->{c}{ host_of($url) } // {};
    return join('; ', map { "$_=$c->{$_}" } sort keys %$c);
}

sub get($j, $host, $name) { $j->{c}{$host}{$name} }
sub set($j, $host, $name, $v) { defined $v ? ($j->{c}{$host}{$name} = $v) : delete $j->{c}{$host}{$name} }

package CxIdp;

# http -- one request with the jar's cookies; no redirect followed.
sub http($jar, $method, $url, %o) {
    my $ua = HTTP::Tiny->new(max_redirect => 0, timeout => 30 * $CxTest::SCALE, agent => 'cx-test-signin/1');
    my %h = %{ $o{headers} // {} };
    my $c = $jar->header($url);
    $h{Cookie} = $c if length $c;
    my %args = (headers => \%h);
    if (defined $o{form}) {
        $args{content} = join('&', map { "$_=" . uri_escape($o{form}{$_}) } sort keys %{ $o{form} });
        $h{'Content-Type'} = 'application/x-www-form-urlencoded';
    } elsif (defined $o{json}) {
        $args{content} = $JSON->encode($o{json});
        $h{'Content-Type'} = 'application/json';
    }
    my $r = $ua->request($method, $url, \%args);
    $jar->take($url, $r->{headers});
    return $r;
}

sub uri_escape($s) {
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub absolute($base, $loc) {
    return $loc if $loc =~ m{^https?://};
    my ($origin) = $base =~ m{^(https?://[^/]+)};
    return $origin . $loc;
}

# signin -- from START (conduix-cp's GET /auth/login/<provider>, or an authorization URL with
# start_is_auth_url => 1) through the oidc-provider's login and consent forms, until the provider
# redirects to a URL under CALLBACK (not followed). Returns {callback, jar, auth_url} or croaks.
sub signin($start, %o) {
    my $jar = $o{jar} // CxIdp::Jar->new;
    my $login = $o{login} // 'alice';
    my $callback = $o{callback} // croak 'signin: callback prefix required';
    my ($url, $auth_url);
    if ($o{start_is_auth_url}) {
        $url = $auth_url = $start;
    } else {
        my $r = http($jar, 'GET', $start);
        croak "signin: $start answered $r->{status}: $r->{content}" unless $r->{status} == 302;
        $url = $auth_url = $r->{headers}{location};
    }
    for (1 .. 20) {
        my $r = http($jar, 'GET', $url);
        if ($r->{status} =~ /^30[123]$/) {
            my $next = absolute($url, $r->{headers}{location});
            return { callback => $next, jar => $jar, auth_url => $auth_url } if index($next, $callback) == 0;
            $url = $next;
            next;
        }
        croak "signin: $url answered $r->{status}: " . substr($r->{content}, 0, 300) unless $r->{status} == 200;
        my %form = $r->{content} =~ /name="?login"?/ ? (prompt => 'login', login => $login, password => 'any')
            : $r->{content} =~ /value="?consent"?/ ? (prompt => 'consent')
            : croak "signin: unexpected page at $url: " . substr($r->{content}, 0, 300);
        my $p = http($jar, 'POST', $url, form => \%form);
        croak "signin: POST $url answered $p->{status}" unless $p->{status} =~ /^30[123]$/;
        my $next = absolute($url, $p->{headers}{location});
        return { callback => $next, jar => $jar, auth_url => $auth_url } if index($next, $callback) == 0;
        $url = $next;
    }
    croak "signin: too many steps from $start";
}

1;
