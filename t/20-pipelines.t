# 20-pipelines.t -- pipeline definitions through the real binary: CRUD, every validation error (and that
# a refused request writes nothing), pagination arithmetic, search and sort, conditional updates, the
# version history, roles, the audit log, and DELETE of a pipeline with an active run.
use v5.36;
use Test::More;
use CxTest;
use JSON::PP;
use Encode ();
use IO::Socket::INET;

my $s = CxTest->new;
$s->start;

my $admin = $s->token(role => 'admin', sub => 't20-admin', email => 'admin@example.com');
my $oper = $s->token(role => 'operator', sub => 't20-operator');
my $viewer = $s->token(role => 'viewer', sub => 't20-viewer');
my $UTF8 = JSON::PP->new->utf8->canonical;
my $P = '/api/v1/pipelines';
my $TIME = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
my $YAML = "sources:\n  in:\n    type: kafka\n    topic: events\nsinks:\n  out:\n    type: s3\n";

sub count($table) { $s->sql("SELECT COUNT(*) AS n FROM $table")->[0]{n} }
sub counts() { join(',', map { count($_) } qw(pipelines pipeline_versions audit_log)) }

sub create($name, %o) {
    my $body = { name => $name, config_yaml => $o{config_yaml} // $YAML };
    $body->{description} = $o{description} if exists $o{description};
    my $r = $s->post($P, $body, token => $o{token} // $oper);
    is($r->{status}, 201, "create $name: 201") or diag $r->{content};
    return $r->{json}{data};
}

# bad -- a refused request: STATUS, CODE, the message and details name FIELD, nothing written.
sub bad($what, $status, $code, $field, $send) {
    my $before = counts();
    my $r = $send->();
    subtest "$what: $status $code" . (defined $field ? " naming $field" : '') => sub {
        is($r->{status}, $status, "status $status") or diag $r->{content};
        is($r->{json}{code}, $code, "code $code");
        ok(JSON::PP::is_bool($r->{json}{success}) && !$r->{json}{success}, 'success false');
        like($r->{json}{error} // '', qr/\Q$field\E/, "message names $field") if defined $field;
        ok(exists $r->{json}{details}{$field}, "details.$field") or diag explain $r->{json}
            if defined $field && $code eq 'VALIDATION_ERROR';
        is(counts(), $before, 'no pipeline, version or audit row written');
    };
    return $r;
}

# ---- CRUD round trip ----
my $r = $s->post($P, { name => 'crud-one', description => 'first', config_yaml => $YAML }, token => $oper,
    'X-Request-ID' => 't20-create-1');
is($r->{status}, 201, 'POST 201') or diag $r->{content};
my $p = $r->{json}{data};
like($p->{id}, $UUID, 'id is a UUID');
is($p->{name}, 'crud-one', 'name');
is($p->{description}, 'first', 'description');
is($p->{config_yaml}, $YAML, 'config_yaml kept byte for byte');
is($p->{version}, 1, 'version 1');
is($p->{created_by}, 't20-operator', 'created_by = the caller (sub when no email)');
is($p->{status}, 'stopped', 'status stopped: it never ran');
like($p->{created_at}, $TIME, 'created_at RFC 3339 UTC');
like($p->{updated_at}, $TIME, 'updated_at RFC 3339 UTC');
is($r->{headers}{location}, "$P/$p->{id}", 'Location header');
is($r->{headers}{etag}, '"1"', 'ETag "1"');

# The create is one multi-statement text with its values as escaped literals (cx_db_batch): text that
# would break out of a literal is stored byte for byte, in the row and in its audit row.
{
    my %odd = (
        name => qq(it's a "pipe" \\ ?; DROP TABLE pipelines; -- \xc3\xa9\xf0\x9f\x98\x80),    # UTF-8 bytes, as sent
        description => qq(back\\slash \\' \\" quote' -- ; ? %s \xe2\x80\xa8),
        config_yaml => qq(a: "it's ?"\nb: '\\x00 \\'\n),
    );
    my $req = 'X-Request-ID';
    my $c = $s->post($P, \%odd, token => $oper, $req => 't20-odd');
    is($c->{status}, 201, 'create with quotes, backslashes, ? and SQL in its text: 201') or diag $c->{content};
    my $g = $s->get("$P/$c->{json}{data}{id}", token => $viewer)->{json}{data};
    is($g->{$_}, $odd{$_}, "$_ stored byte for byte") for sort keys %odd;
    my $row = $s->sql('SELECT name, description, config_yaml FROM pipelines WHERE id = ?', $c->{json}{data}{id})->[0];
    is(Encode::encode('UTF-8', $row->{$_}), $odd{$_}, "$_ in MySQL as sent") for sort keys %odd;    # (DBD decodes)
    my $audit = $s->sql("SELECT after_json FROM audit_log WHERE action = 'pipeline_create' AND request_id = 't20-odd'")->[0];
    is(Encode::encode('UTF-8', JSON::PP->new->decode($audit->{after_json} // '{}')->{name}), $odd{name},
        'its audit row, in the same transaction');
    ok(count('pipelines') > 0, 'pipelines is still there');
    $s->delete("$P/$c->{json}{data}{id}", token => $oper);
}

$r = $s->get("$P/$p->{id}", token => $viewer);
is($r->{status}, 200, 'GET by id 200 (viewer)');
is_deeply($r->{json}{data}, $p, 'GET returns what POST returned');
is($r->{headers}{etag}, '"1"', 'GET ETag');

$r = $s->get("$P?page_size=100", token => $viewer);
is($r->{status}, 200, 'list 200');
ok((grep { $_->{id} eq $p->{id} } @{ $r->{json}{data}{items} }), 'list contains it');

$r = $s->put("$P/$p->{id}", { config_yaml => "a: 1\n" }, token => $admin);
is($r->{status}, 200, 'PUT 200') or diag $r->{content};
is($r->{json}{data}{version}, 2, 'config change: version 2');
is($r->{json}{data}{config_yaml}, "a: 1\n", 'new config');
is($r->{json}{data}{description}, 'first', 'fields not given stay');
is($r->{json}{data}{updated_by}, 'admin@example.com', 'updated_by = the caller (email)');
is($r->{json}{data}{created_by}, 't20-operator', 'created_by unchanged');
is($r->{headers}{etag}, '"2"', 'PUT ETag "2"');

$r = $s->post($P, { name => 'no-desc', config_yaml => 'x: 1' }, token => $oper);
is($r->{json}{data}{description}, '', 'no description: ""');
$r = $s->put("$P/$r->{json}{data}{id}", { description => undef }, token => $oper);
is($r->{status}, 200, 'description null on an empty description: 200');
is($r->{json}{data}{version}, 1, 'an update that changes nothing keeps the version');

# Unicode names count characters, not bytes; a 4-byte character round-trips.
my $uname = "\x{1F680}-" . ("\x{e9}" x 253);    # 255 characters, 766 bytes
$r = $s->post($P, $UTF8->encode({ name => $uname, config_yaml => 'x: 1' }), token => $oper);
is($r->{status}, 201, 'a 255-character multi-byte name is accepted') or diag $r->{content};
is(decode_json($r->{content})->{data}{name}, $uname, 'the name round-trips');

# ---- validation ----
bad('missing name', 400, 'VALIDATION_ERROR', 'name', sub { $s->post($P, { config_yaml => $YAML }, token => $oper) });
bad('empty name', 400, 'VALIDATION_ERROR', 'name', sub { $s->post($P, { name => '', config_yaml => $YAML }, token => $oper) });
bad('256-character name', 400, 'VALIDATION_ERROR', 'name',
    sub { $s->post($P, { name => 'n' x 256, config_yaml => $YAML }, token => $oper) });
bad('256 multi-byte characters', 400, 'VALIDATION_ERROR', 'name',
    sub { $s->post($P, $UTF8->encode({ name => "\x{e9}" x 256, config_yaml => 'x: 1' }), token => $oper) });
is($s->post($P, { name => 'n' x 255, config_yaml => $YAML }, token => $oper)->{status}, 201, '255-character name: 201');
bad('name with leading space', 400, 'VALIDATION_ERROR', 'name',
    sub { $s->post($P, { name => ' padded', config_yaml => $YAML }, token => $oper) });
bad('name with a control character', 400, 'VALIDATION_ERROR', 'name',
    sub { $s->post($P, { name => "a\tb", config_yaml => $YAML }, token => $oper) });
bad('name not a string', 400, 'VALIDATION_ERROR', 'name', sub { $s->post($P, { name => 42, config_yaml => $YAML }, token => $oper) });
$r = bad('duplicate name', 409, 'CONFLICT', 'name', sub { $s->post($P, { name => 'crud-one', config_yaml => $YAML }, token => $oper) });
bad('duplicate name, other case', 409, 'CONFLICT', 'name',
    sub { $s->post($P, { name => 'CRUD-ONE', config_yaml => $YAML }, token => $oper) });
bad('missing config_yaml', 400, 'VALIDATION_ERROR', 'config_yaml', sub { $s->post($P, { name => 'v1' }, token => $oper) });
bad('empty config_yaml', 400, 'VALIDATION_ERROR', 'config_yaml',
    sub { $s->post($P, { name => 'v2', config_yaml => "# only a comment\n" }, token => $oper) });
bad('config_yaml not a string', 400, 'VALIDATION_ERROR', 'config_yaml',
    sub { $s->post($P, { name => 'v3', config_yaml => { sources => 1 } }, token => $oper) });
bad('config_yaml a number', 400, 'VALIDATION_ERROR', 'config_yaml', sub { $s->post($P, { name => 'v3', config_yaml => 7 }, token => $oper) });
$r = bad('bad YAML', 400, 'VALIDATION_ERROR', 'config_yaml',
    sub { $s->post($P, { name => 'v4', config_yaml => "sources:\n  in:\n    type: kafka: x\n" }, token => $oper) });
like($r->{json}{error}, qr/^config_yaml: invalid YAML at line 3, column 16: mapping values are not allowed/,
    'bad YAML: the message gives line and column');
like($r->{json}{details}{config_yaml}, qr/line 3, column 16/, 'details give line and column');
$r = bad('bad YAML indentation', 400, 'VALIDATION_ERROR', 'config_yaml',
    sub { $s->post($P, { name => 'v5', config_yaml => "a:\n  b: 1\n c: 2\n" }, token => $oper) });
like($r->{json}{error}, qr/invalid YAML at line 3, column 2/, 'indentation error: line 3, column 2');
$r = bad('unclosed flow sequence', 400, 'VALIDATION_ERROR', 'config_yaml',
    sub { $s->post($P, { name => 'v6', config_yaml => "a: [1, 2\n" }, token => $oper) });
like($r->{json}{error}, qr/invalid YAML at line \d+, column \d+/, 'unclosed: line and column');
bad('alias to no anchor', 400, 'VALIDATION_ERROR', 'config_yaml',
    sub { $s->post($P, { name => 'v7', config_yaml => "a: *nothing\n" }, token => $oper) });
bad('unknown field', 400, 'VALIDATION_ERROR', 'colour',
    sub { $s->post($P, { name => 'v8', config_yaml => $YAML, colour => 'blue' }, token => $oper) });
bad('version on create', 400, 'VALIDATION_ERROR', 'version',
    sub { $s->post($P, { name => 'v9', config_yaml => $YAML, version => 1 }, token => $oper) });
bad('description too long', 400, 'VALIDATION_ERROR', 'description',
    sub { $s->post($P, { name => 'v10', config_yaml => $YAML, description => 'd' x 65536 }, token => $oper) });
is($s->post($P, { name => 'v10', config_yaml => $YAML, description => 'd' x 65535 }, token => $oper)->{status}, 201,
    '65535-byte description: 201');
bad('description not a string', 400, 'VALIDATION_ERROR', 'description',
    sub { $s->post($P, { name => 'v11', config_yaml => $YAML, description => [1] }, token => $oper) });
bad('invalid JSON', 400, 'INVALID_JSON', undef, sub { $s->post($P, '{"name": "v12", ', token => $oper) });
bad('body is an array', 400, 'VALIDATION_ERROR', 'body', sub { $s->post($P, '[]', token => $oper) });
$r = bad('several bad fields', 400, 'VALIDATION_ERROR', 'name', sub { $s->post($P, { name => '', config_yaml => 5 }, token => $oper) });
ok(exists $r->{json}{details}{config_yaml}, 'every bad field is in details');

# Aliases are not expanded: a "billion laughs" document is checked in no time and accepted.
my $laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
$laughs .= sprintf("%s: &%s [%s]\n", chr(97 + $_), chr(97 + $_), join(', ', ('*' . chr(96 + $_)) x 10)) for 1 .. 9;
$r = $s->post($P, { name => 'laughs', config_yaml => $laughs }, token => $oper);
is($r->{status}, 201, 'billion laughs YAML is accepted (aliases not expanded)') or diag $r->{content};
ok($r->{elapsed} < 5, 'and answered quickly');

# ---- pagination ----
my @pg = map { create(sprintf('pg-%02d', $_)) } 1 .. 25;
$r = $s->get("$P?search=pg-&page_size=10", token => $viewer);
is($r->{json}{data}{total}, 25, 'total 25');
is($r->{json}{data}{total_pages}, 3, 'total_pages 3');
is($r->{json}{data}{page_size}, 10, 'page_size 10');
is(scalar @{ $r->{json}{data}{items} }, 10, 'page 1 has 10 items');
my %seen;
for my $page (1 .. 3) {
    $r = $s->get("$P?search=pg-&page_size=10&page=$page", token => $viewer);
    is($r->{json}{data}{page}, $page, "page $page");
    $seen{ $_->{id} }++ for @{ $r->{json}{data}{items} };
}
is(scalar @{ $r->{json}{data}{items} }, 5, 'page 3 has 5 items');
is(scalar(keys %seen), 25, 'pages 1..3 hold 25 distinct pipelines');
$r = $s->get("$P?search=pg-&page_size=10&page=4", token => $viewer);
is($r->{status}, 200, 'a page beyond the end: 200');
is_deeply($r->{json}{data}{items}, [], '... with no items');
is($r->{json}{data}{total}, 25, '... and the total');
$r = $s->get($P, token => $viewer);
is($r->{json}{data}{page_size}, 20, 'default page_size 20');
is($r->{json}{data}{total}, count('pipelines'), 'unfiltered total = rows in the table');
# The unfiltered total is the instance's count (db/pipelines.c): a create or delete through it counts at
# once, on every worker; a row written elsewhere (another replica, by hand) within a second.
{
    sub total() { $s->get("$P?page_size=1", token => $viewer)->{json}{data}{total} }
    my $t0 = total();
    my $c = create("counted-$$");
    my @after = map { total() } 1 .. 8;    # several workers answer these
    is_deeply(\@after, [($t0 + 1) x 8], 'a create through the API is in the total at once') or diag explain \@after;
    $s->delete("$P/$c->{id}", token => $oper);
    @after = map { total() } 1 .. 8;
    is_deeply(\@after, [($t0) x 8], 'and a delete');
    $s->sql("INSERT INTO pipelines (id, name, config_yaml) VALUES ('00000000-0000-4000-8000-0000000c0de0', 'by-hand-$$', 'a: 1')");
    ok(wait_until(sub { total() == $t0 + 1 }, 5, 'the row inserted by hand counted'), 'a row inserted by hand is counted soon');
    is(total(), count('pipelines'), '= rows in the table');
    $s->sql("DELETE FROM pipelines WHERE id = '00000000-0000-4000-8000-0000000c0de0'");
    ok(wait_until(sub { total() == $t0 }, 5, 'the row deleted by hand'), 'and one deleted by hand');
}
for my $q ('page_size=0', 'page_size=101', 'page_size=abc', 'page=0', 'page=x') {
    my ($f) = $q =~ /^(\w+)=/;
    bad("?$q", 400, 'VALIDATION_ERROR', $f, sub { $s->get("$P?$q", token => $viewer) });
}

# ---- search and sort ----
create($_) for 'alpha_one', 'alphaXone', '100%-done', '100x-done';
sub names($q) { [map { $_->{name} } @{ $s->get("$P?$q", token => $viewer)->{json}{data}{items} }] }
is_deeply(names('search=alpha_'), ['alpha_one'], 'search: _ matches itself only');
is_deeply(names('search=100%25'), ['100%-done'], 'search: % matches itself only');
is_deeply([sort @{ names('search=ALPHA') }], ['alphaXone', 'alpha_one'], 'search is case-insensitive');
is_deeply(names('search=zzz-none'), [], 'search without a match: no items');
my @sorted = map { sprintf('pg-%02d', $_) } 1 .. 25;
is_deeply(names('search=pg-&sort=name&page_size=100'), \@sorted, 'sort=name: ascending by default');
is_deeply(names('search=pg-&sort=name&order=desc&page_size=100'), [reverse @sorted], 'sort=name&order=desc');
# distinct creation and update times, in an order unlike the names
for my $i (0 .. 24) {
    $s->sql('UPDATE pipelines SET created_at = NOW(3) - INTERVAL ? SECOND, updated_at = NOW(3) - INTERVAL ? SECOND WHERE id = ?',
        ($i * 7) % 25 + 1, 100 - $i, $pg[$i]{id});
}
my @by_created = map { $_->{name} } sort { (($a->{i} * 7) % 25) <=> (($b->{i} * 7) % 25) } map { { %{ $pg[$_] }, i => $_ } } 0 .. 24;
is_deeply(names('search=pg-&page_size=100'), \@by_created, 'default: created_at, newest first');
is_deeply(names('search=pg-&sort=created_at&order=asc&page_size=100'), [reverse @by_created], 'sort=created_at&order=asc');
is_deeply(names('search=pg-&sort=updated_at&order=desc&page_size=100'), [reverse @sorted], 'sort=updated_at&order=desc');
bad('bad sort', 400, 'VALIDATION_ERROR', 'sort', sub { $s->get("$P?sort=id", token => $viewer) });
bad('sort injection', 400, 'VALIDATION_ERROR', 'sort', sub { $s->get("$P?sort=name%3B%20DROP%20TABLE%20x", token => $viewer) });
bad('bad order', 400, 'VALIDATION_ERROR', 'order', sub { $s->get("$P?order=up", token => $viewer) });

# ---- conditional update ----
my $c = create('cond', config_yaml => "v: 1\n");
my $cp = "$P/$c->{id}";
$r = $s->put($cp, { config_yaml => "v: 2\n" }, token => $oper, 'If-Match' => '"1"');
is($r->{status}, 200, 'If-Match current: 200') or diag $r->{content};
is($r->{json}{data}{version}, 2, '... version 2');
$r = bad('If-Match stale', 409, 'CONFLICT', 'version', sub { $s->put($cp, { config_yaml => "v: 9\n" }, token => $oper, 'If-Match' => '"1"') });
like($r->{json}{error}, qr/version 2/, 'the conflict says the current version');
is($s->sql('SELECT version FROM pipelines WHERE id = ?', $c->{id})->[0]{version}, 2, 'stale update changed nothing');
bad('body version stale', 409, 'CONFLICT', 'version', sub { $s->put($cp, { config_yaml => "v: 9\n", version => 1 }, token => $oper) });
$r = $s->put($cp, { config_yaml => "v: 3\n", version => 2 }, token => $oper);
is($r->{status}, 200, 'body version current: 200');
is($r->{json}{data}{version}, 3, '... version 3');
$r = $s->put($cp, { description => 'now described' }, token => $oper, 'If-Match' => '3');
is($r->{status}, 200, 'bare If-Match 3: 200');
is($r->{json}{data}{version}, 4, 'a description change bumps the version too');
$r = $s->put($cp, { name => 'cond-renamed' }, token => $oper, 'If-Match' => '*');
is($r->{status}, 200, 'If-Match *: 200');
is($r->{json}{data}{version}, 5, 'a rename bumps the version');
is($r->{headers}{etag}, '"5"', 'ETag follows');
bad('weak If-Match', 400, 'VALIDATION_ERROR', 'If-Match', sub { $s->put($cp, { name => 'x1' }, token => $oper, 'If-Match' => 'W/"5"') });
bad('malformed If-Match', 400, 'VALIDATION_ERROR', 'If-Match', sub { $s->put($cp, { name => 'x1' }, token => $oper, 'If-Match' => '"v5"') });
bad('If-Match and version disagree', 400, 'VALIDATION_ERROR', 'version',
    sub { $s->put($cp, { name => 'x1', version => 4 }, token => $oper, 'If-Match' => '"5"') });
bad('empty update', 400, 'VALIDATION_ERROR', 'body', sub { $s->put($cp, {}, token => $oper) });
bad('update with only a version', 400, 'VALIDATION_ERROR', 'body', sub { $s->put($cp, { version => 5 }, token => $oper) });
bad('update: version not an integer', 400, 'VALIDATION_ERROR', 'version',
    sub { $s->put($cp, { name => 'x1', version => '5' }, token => $oper) });
bad('update: bad YAML', 400, 'VALIDATION_ERROR', 'config_yaml', sub { $s->put($cp, { config_yaml => "a: b: c" }, token => $oper) });
bad('update: unknown field', 400, 'VALIDATION_ERROR', 'id', sub { $s->put($cp, { id => $c->{id}, name => 'x2' }, token => $oper) });
bad('update: name taken', 409, 'CONFLICT', 'name', sub { $s->put($cp, { name => 'crud-one' }, token => $oper) });
bad('update: unknown id', 404, 'NOT_FOUND', undef,
    sub { $s->put("$P/00000000-0000-4000-8000-00000000dead", { name => 'x3' }, token => $oper) });
bad('update: id not a UUID', 404, 'NOT_FOUND', undef, sub { $s->put("$P/not-a-uuid", { name => 'x3' }, token => $oper) });
is($s->get("$P/not-a-uuid", token => $viewer)->{status}, 404, 'GET of a non-UUID id: 404');
is($s->get("$P/00000000-0000-4000-8000-00000000dead", token => $viewer)->{json}{code}, 'NOT_FOUND', 'GET of an unknown id: NOT_FOUND');

# ---- concurrency: requests sent together on separate connections (the server has 2 workers) ----
sub together($n, $method, $path, $bodies, $headers = {}) {
    my @c = map { $s->conn } 1 .. $n;
    for my $i (0 .. $n - 1) {
        my $b = $UTF8->encode($bodies->($i));
        $c[$i]->send_raw($c[$i]->request_text($method, $path, body => $b, headers => { 'Content-Type' => 'application/json',
            Authorization => "Bearer $oper", Connection => 'close', %$headers }));
    }
    my @st = map { $_->read_response->{status} } @c;
    $_->close for @c;
    return [sort @st];
}
my $race = create('race', config_yaml => "r: 0\n");
my $st = together(8, 'PUT', "$P/$race->{id}", sub($i) { { config_yaml => "r: " . ($i + 1) . "\n" } }, { 'If-Match' => '"1"' });
is_deeply($st, [200, (409) x 7], '8 concurrent updates expecting version 1: one 200, seven 409') or diag explain $st;
is($s->sql('SELECT version FROM pipelines WHERE id = ?', $race->{id})->[0]{version}, 2, '... and version 2');
$st = together(6, 'POST', $P, sub($i) { { name => 'same-name-race', config_yaml => "i: $i\n" } });
is_deeply($st, [201, (409) x 5], '6 concurrent creates of one name: one 201, five 409') or diag explain $st;
is($s->sql("SELECT COUNT(*) AS n FROM pipelines WHERE name = 'same-name-race'")->[0]{n}, 1, '... and one row');

# ---- versions ----
$r = $s->get("$cp/versions", token => $viewer);
is($r->{status}, 200, 'versions 200') or diag $r->{content};
is($r->{json}{data}{total}, 5, '5 versions');
is_deeply([map { $_->{version} } @{ $r->{json}{data}{items} }], [5, 4, 3, 2, 1], 'newest first');
is_deeply([map { $_->{config_yaml} } @{ $r->{json}{data}{items} }], ["v: 3\n", "v: 3\n", "v: 3\n", "v: 2\n", "v: 1\n"],
    'each version keeps its config');
my $v1 = $r->{json}{data}{items}[-1];
is($v1->{created_by}, 't20-operator', 'created_by of a version');
like($v1->{created_at}, $TIME, 'created_at of a version');
$r = $s->get("$cp/versions?page=2&page_size=2", token => $viewer);
is_deeply([map { $_->{version} } @{ $r->{json}{data}{items} }], [3, 2], 'versions page 2 of size 2');
is($r->{json}{data}{total_pages}, 3, 'versions total_pages');
is($s->get("$P/00000000-0000-4000-8000-00000000dead/versions", token => $viewer)->{status}, 404, 'versions of an unknown id: 404');
bad('versions: bad page_size', 400, 'VALIDATION_ERROR', 'page_size', sub { $s->get("$cp/versions?page_size=0", token => $viewer) });

# A pipeline inserted directly in SQL with the benchmark's columns only.
my $seed = '00000000-0000-4000-8000-000000000042';
$s->sql("INSERT INTO pipelines (id, name, description, config_yaml, created_by, created_at, updated_at)
         VALUES (?, 'seeded', 'by SQL', 'seed: 1', 'bench', NOW() - INTERVAL 1 HOUR, NOW() - INTERVAL 1 HOUR)", $seed);
$r = $s->get("$P/$seed", token => $viewer);
is($r->{status}, 200, 'seeded pipeline: GET 200');
is($r->{json}{data}{version}, 1, '... version 1');
$r = $s->get("$P/$seed/versions", token => $viewer);
is($r->{json}{data}{total}, 1, 'seeded pipeline: one version');
is($r->{json}{data}{items}[0]{config_yaml}, 'seed: 1', '... its current config');
is($r->{json}{data}{items}[0]{version}, 1, '... as version 1');
$r = $s->put("$P/$seed", { config_yaml => "seed: 2\n" }, token => $oper, 'If-Match' => '"1"');
is($r->{status}, 200, 'seeded pipeline: conditional PUT 200') or diag $r->{content};
$r = $s->get("$P/$seed/versions", token => $viewer);
is_deeply([map { [$_->{version}, $_->{config_yaml}] } @{ $r->{json}{data}{items} }], [[2, "seed: 2\n"], [1, 'seed: 1']],
    'seeded pipeline after an update: both configs');
is($r->{json}{data}{items}[1]{created_by}, 'bench', '... version 1 by its creator');

# ---- roles ----
bad('viewer cannot create', 403, 'FORBIDDEN', undef, sub { $s->post($P, { name => 'r1', config_yaml => $YAML }, token => $viewer) });
bad('viewer cannot update', 403, 'FORBIDDEN', undef, sub { $s->put($cp, { name => 'r1' }, token => $viewer) });
bad('viewer cannot delete', 403, 'FORBIDDEN', undef, sub { $s->delete($cp, token => $viewer) });
my $del = $s->post($P, { name => 'r-del', config_yaml => $YAML }, token => $oper);
is($s->delete("$P/$del->{json}{data}{id}", token => $oper)->{status}, 200, 'an operator deletes a pipeline (pipeline CRUD)');
bad('no token', 401, 'UNAUTHORIZED', undef, sub { $s->get($P) });

# ---- audit log ----
sub audit($action, $id) {
    $s->sql('SELECT actor, action, target_type, target_id, request_id, before_json, after_json FROM audit_log
             WHERE action = ? AND target_id = ? ORDER BY id', $action, $id);
}
my $a = audit('pipeline_create', $p->{id});
is(scalar @$a, 1, 'one pipeline_create row');
is($a->[0]{actor}, 't20-operator', 'actor');
is($a->[0]{target_type}, 'pipeline', 'target_type');
is($a->[0]{request_id}, 't20-create-1', 'request_id = the X-Request-ID of the request');
ok(!defined $a->[0]{before_json}, 'create: no before');
is(decode_json($a->[0]{after_json})->{name}, 'crud-one', 'create: after is the pipeline');
$a = audit('pipeline_update', $p->{id});
is(scalar @$a, 1, 'one pipeline_update row');
is($a->[0]{actor}, 'admin@example.com', 'update actor');
is(decode_json($a->[0]{before_json})->{version}, 1, 'update: before at version 1');
is(decode_json($a->[0]{after_json})->{version}, 2, 'update: after at version 2');
ok(length($a->[0]{request_id} // '') > 0, 'update: request_id');
is(scalar @{ audit('pipeline_update', $c->{id}) }, 4, 'four updates of cond: four audit rows');

# ---- delete ----
$r = $s->delete("$P/$p->{id}", token => $admin, 'X-Request-ID' => 't20-delete-1');
is($r->{status}, 200, 'admin DELETE 200') or diag $r->{content};
is_deeply($r->{json}{data}, { id => $p->{id}, deleted => JSON::PP::true }, 'data {id, deleted: true}');
$r = $s->get("$P/$p->{id}", token => $viewer);
is($r->{status}, 404, 'GET after DELETE: 404');
is($r->{json}{code}, 'NOT_FOUND', '... NOT_FOUND');
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_versions WHERE pipeline_id = ?', $p->{id})->[0]{n}, 0, 'its versions are gone');
$a = audit('pipeline_delete', $p->{id});
is(scalar @$a, 1, 'one pipeline_delete row');
is($a->[0]{request_id}, 't20-delete-1', 'delete request_id');
is(decode_json($a->[0]{before_json})->{id}, $p->{id}, 'delete: before is the pipeline');
ok(!defined $a->[0]{after_json}, 'delete: no after');
bad('DELETE again', 404, 'NOT_FOUND', undef, sub { $s->delete("$P/$p->{id}", token => $admin) });

# with an active run, and a schedule
my $busy = create('busy');
my $run = '00000000-0000-4000-8000-0000000000a1';
$s->sql("INSERT INTO pipeline_runs (id, pipeline_id, agent_id, status, started_at) VALUES (?, ?, 'agent-t20', 'running', NOW(3))",
    $run, $busy->{id});
$s->sql("INSERT INTO schedules (id, pipeline_id, cron_expression) VALUES ('00000000-0000-4000-8000-0000000000b1', ?, '* * * * *')",
    $busy->{id});
$r = bad('DELETE with an active run', 409, 'INVALID_STATE', undef, sub { $s->delete("$P/$busy->{id}", token => $admin) });
like($r->{json}{error}, qr/force/, 'the message tells about ?force=true');
is($s->get("$P/$busy->{id}", token => $viewer)->{status}, 200, 'the pipeline is still there');
bad('?force=maybe', 400, 'VALIDATION_ERROR', 'force', sub { $s->delete("$P/$busy->{id}?force=maybe", token => $admin) });
$r = $s->delete("$P/$busy->{id}?force=true", token => $admin);
is($r->{status}, 200, 'DELETE ?force=true: 200') or diag $r->{content};
is($s->get("$P/$busy->{id}", token => $viewer)->{status}, 404, 'then it is gone');
is($s->sql('SELECT COUNT(*) AS n FROM schedules WHERE pipeline_id = ?', $busy->{id})->[0]{n}, 0, 'its schedules went with it');
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE id = ?', $run)->[0]{n}, 1, 'its run stays as history');

# a finished run does not block a delete
my $done = create('done');
$s->sql("INSERT INTO pipeline_runs (id, pipeline_id, status) VALUES ('00000000-0000-4000-8000-0000000000a2', ?, 'completed')",
    $done->{id});
is($s->delete("$P/$done->{id}", token => $admin)->{status}, 200, 'DELETE with only a completed run: 200');

# ---- status: the current (active) run's, else stopped, in the list and alone ----
{
    my %st;
    for my $case (['st-never'], ['st-running', 'running'], ['st-paused', 'paused'], ['st-failed', 'failed'],
        ['st-lost', 'lost'], ['st-completed', 'completed'], ['st-stopped', 'stopped'], ['st-pending', 'pending']) {
        my ($name, $run_status) = @$case;
        my $pl = create($name);
        $st{$name} = $pl->{id};
        next unless $run_status;
        # an older run that ended first: only the current run counts
        $s->sql("INSERT INTO pipeline_runs (id, pipeline_id, status, created_at) VALUES (UUID(), ?, 'failed', NOW(3) - INTERVAL 1 HOUR)",
            $pl->{id});
        $s->sql('INSERT INTO pipeline_runs (id, pipeline_id, status, created_at) VALUES (UUID(), ?, ?, NOW(3))', $pl->{id}, $run_status);
    }
    my %want = ('st-never' => 'stopped', 'st-running' => 'running', 'st-paused' => 'paused', 'st-failed' => 'stopped',
        'st-lost' => 'stopped', 'st-completed' => 'stopped', 'st-stopped' => 'stopped', 'st-pending' => 'pending');
    # /status tells more of an ended newest run
    my %newest = (%want, 'st-failed' => 'failed', 'st-lost' => 'lost');
    my $list = $s->get("$P?search=st-&page_size=100", token => $viewer)->{json}{data}{items};
    is_deeply({ map { $_->{name} => $_->{status} } @$list }, \%want, 'list: each pipeline carries its status');
    for my $name (sort keys %want) {
        my $one = $s->get("$P/$st{$name}", token => $viewer)->{json}{data};
        is($one->{status}, $want{$name}, "GET $name: status $want{$name}");
        is($s->get("$P/$st{$name}/status", token => $viewer)->{json}{data}{status}, $newest{$name},
            "GET $name/status: $newest{$name}");
    }
    my $r = $s->put("$P/$st{'st-running'}", { description => 'still running' }, token => $oper);
    is($r->{json}{data}{status}, 'running', 'PUT answers the status too');
    my $a = audit('pipeline_update', $st{'st-running'});
    ok(!exists decode_json($a->[0]{after_json})->{status}, 'the audit row keeps the definition only (no status)');
}

# ---- the benchmark's shapes ----
$r = $s->post($P, '{"name":"bench-pipeline-t1-1","description":"created by wrk","config_yaml":"sources:\n  in:\n    type: kafka\n'
    . '    topic: events\nsinks:\n  out:\n    type: s3\n    bucket: archive\n"}', token => $admin);
is($r->{status}, 201, "bench create.lua's body: 201") or diag $r->{content};
is($s->get('/api/v1/pipelines?page=1&page_size=20', token => $admin)->{status}, 200, "bench list's URL: 200");

# ---- creates that arrive together: one transaction for a worker's turn, each answered for itself ----
# burst -- POST each body on a connection of its own, every request written before any answer is read;
# the answers (status and envelope) in order.
sub burst(@bodies) {
    my @socks = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Proto => 'tcp') or die "connect: $!" } @bodies;
    for my $i (0 .. $#bodies) {
        my $json = encode_json($bodies[$i]);
        $socks[$i]->print("POST $P HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $oper\r\nX-Request-ID: t20-burst-$$-$i\r\n"
                . "Content-Type: application/json\r\nContent-Length: " . length($json) . "\r\nConnection: close\r\n\r\n$json");
    }
    return map {
        local $/;
        my $sock = $_;
        my $t = <$sock> // '';
        close $sock;
        my ($st) = $t =~ m{^HTTP/1\.1 (\d+)};
        my ($body) = $t =~ /\r\n\r\n(.*)\z/s;
        { status => $st // 0, json => eval { decode_json($body // '') } // {} }
    } @socks;
}
{
    my $before = count('audit_log');
    my @a = burst(map { { name => "burst-$$-$_", config_yaml => $YAML } } 1 .. 30);
    is(scalar(grep { $_->{status} == 201 } @a), 30, '30 creates at once: each 201');
    my %ids = map { ($_->{json}{data}{id} // '') => 1 } @a;
    is(scalar(grep { /$UUID/ } keys %ids), 30, 'thirty distinct ids');
    is(scalar(grep { ($a[$_]{json}{data}{name} // '') eq "burst-$$-" . ($_ + 1) } 0 .. 29), 30, 'each answer is its own pipeline');
    is($s->sql("SELECT COUNT(*) AS n FROM pipelines WHERE name LIKE 'burst-$$-%'")->[0]{n}, 30, 'thirty rows');
    is(count('audit_log') - $before, 30, 'thirty audit rows');
    is($s->sql("SELECT COUNT(*) AS n FROM audit_log a JOIN pipelines p ON p.id = a.target_id WHERE a.action = 'pipeline_create' "
            . "AND p.name LIKE 'burst-$$-%' AND a.request_id LIKE 't20-burst-$$-%'")->[0]{n}, 30, 'each with its request id');

    # a name taken inside the group, and one taken before it: those two are 409, the others are made
    # reads by id that arrive together: one statement (an IN list), each answered for itself
    my @want = map { $_->{json}{data} } @a[0 .. 9];
    my @ids = ((map { $_->{id} } @want), $want[0]{id}, $want[3]{id}, '00000000-0000-4000-8000-00000000dead');
    my @socks = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Proto => 'tcp') or die "connect: $!" } @ids;
    $socks[$_]->print("GET $P/$ids[$_] HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $viewer\r\nConnection: close\r\n\r\n") for 0 .. $#ids;
    my @g = map {
        local $/;
        my $sock = $_;
        my $t = <$sock> // '';
        my ($st) = $t =~ m{^HTTP/1\.1 (\d+)};
        my ($body) = $t =~ /\r\n\r\n(.*)\z/s;
        { status => $st // 0, json => eval { decode_json($body // '') } // {} }
    } @socks;
    is(join(',', map { $_->{status} } @g), join(',', (200) x 12, 404), '13 reads at once: 200 each, 404 for an unknown id');
    is_deeply([map { $_->{json}{data} } @g[0 .. 9]], \@want, 'each the pipeline asked for, as its create answered it');
    is_deeply([map { $_->{json}{data} } @g[10, 11]], [@want[0, 3]], 'an id asked twice: the same pipeline twice');
    is($g[12]{json}{code}, 'NOT_FOUND', 'the unknown id: NOT_FOUND');

    create("taken-$$");
    $before = counts();
    my @b = burst(map { { name => $_, config_yaml => $YAML } } "dup-$$", "fresh-$$-1", "dup-$$", "taken-$$", "fresh-$$-2");
    # (which of the two same names comes first is the order the worker read them in)
    is(join(',', sort map { $_->{status} } @b[0, 2]), '201,409', 'two creates of one name at once: one 201, one 409')
        or diag explain \@b;
    is(join(',', map { $_->{status} } @b[1, 3, 4]), '201,409,201', 'a name taken before: 409; the others 201') or diag explain \@b;
    is((grep { $_->{status} == 409 } @b)[0]{json}{code}, 'CONFLICT', 'code CONFLICT');
    ok(exists $b[3]{json}{details}{name}, 'naming name');
    my ($p0, $v0, $a0) = split /,/, $before;
    is(counts(), join(',', $p0 + 3, $v0, $a0 + 3), 'three pipelines and three audit rows written, no more');
}

is($s->stop, 0, 'stop exits 0');
done_testing;
