# 08-token.t -- `conduix-cp token` mints HS256 tokens with the configured secret that the server accepts;
# bad arguments exit 1.
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_decode);

my $s = CxTest->new;
$s->start;

my $tok = $s->token(role => 'admin', sub => 't08-admin', email => 'admin@example.com');
like($tok, qr/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'token prints one JWT');
my $d = jwt_decode($tok);
is($d->{header}{alg}, 'HS256', 'alg HS256');
is($d->{claims}{sub}, 't08-admin', 'sub');
is($d->{claims}{role}, 'admin', 'role');
is($d->{claims}{email}, 'admin@example.com', 'email');
is($d->{claims}{iss}, 'conduix-cp', 'iss is auth.issuer');
ok(length($d->{claims}{jti} // '') > 0, 'jti');
my $now = time;
ok(abs(($d->{claims}{exp} // 0) - $now - 86400) < 120, 'exp defaults to 24h') or diag explain $d->{claims};
ok(abs(($d->{claims}{iat} // 0) - $now) < 120, 'iat is now');

my $r = $s->get('/api/v1/pipelines', token => $tok);
isnt($r->{status}, 401, "the server accepts the minted token (GET /api/v1/pipelines: $r->{status})")
    or diag $r->{content};
isnt($r->{status}, 403, 'an admin is not forbidden');

my $short = $s->token(role => 'viewer', sub => 't08-viewer', ttl => '1h');
$d = jwt_decode($short);
ok(abs(($d->{claims}{exp} // 0) - time - 3600) < 120, '--ttl 1h') or diag explain $d->{claims};
isnt($s->get('/api/v1/pipelines', token => $short)->{status}, 401, 'a viewer token is accepted');
my $t2 = $s->token(role => 'viewer', sub => 't08-viewer', ttl => '1h');
isnt(jwt_decode($t2)->{claims}{jti}, $d->{claims}{jti}, 'each token has its own jti');

for my $bad (['--role', 'superuser', '--sub', 'x'], ['--role', 'admin'], ['--role', 'admin', '--sub', 'x', '--ttl',
    'forever'])
{
    my $x = $s->cli('token', @$bad);
    is($x->{exit}, 1, "token @$bad: exit 1") or diag "$x->{out}$x->{err}";
    is($x->{out}, '', "token @$bad: prints no token");
}

# A token minted with another config's secret is refused.
my $other = CxTest->new(create_db => 0);
my $foreign = $other->token(role => 'admin', sub => 't08-foreign');
is($s->get('/api/v1/pipelines', token => $foreign)->{status}, 401, "another instance's token is refused");

is($s->stop, 0, 'stop exits 0');
done_testing;
