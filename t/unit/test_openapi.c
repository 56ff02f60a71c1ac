/*
 * test_openapi.c -- docs/openapi.yaml and the router's table (src/api/routes.c) list the same routes
 * and methods, with the same least role (x-conduix-role), and public operations, only they, waive the
 * bearer token (security: []). A failure prints every difference, naming the side it is missing on,
 * so adding a route means adding its entry to the document (and the other way round).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>
#include <cmocka.h>

#include "conduix/api.h"
#include "conduix/router.h"

#define MAX_OPS 512

typedef struct op {
    char method[8];      /* GET, POST … */
    char path[256];      /* /api/v1/pipelines/{id} */
    char role[16];       /* x-conduix-role, "" when missing */
    int public_security; /* security: [] on the operation */
} op_t;

static op_t doc_ops[MAX_OPS];
static size_t ndoc;

static const char *const roles[] = {[CX_ACCESS_PUBLIC] = "public",
                                    [CX_ACCESS_VIEWER] = "viewer",
                                    [CX_ACCESS_OPERATOR] = "operator",
                                    [CX_ACCESS_ADMIN] = "admin",
                                    [CX_ACCESS_AGENT] = "agent"};

static yaml_node_t *get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *p;
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

/* load_doc -- every operation of the document's paths into doc_ops. */
static void load_doc(void)
{
    static const char *const methods[] = {"get", "put", "post", "delete", "patch", "options", "head", "trace"};
    const char *src = getenv("CX_SRCDIR");
    char path[4096];
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *paths;
    yaml_node_pair_t *p, *q;
    FILE *f;

    snprintf(path, sizeof(path), "%s/docs/openapi.yaml", src && *src ? src : ".");
    if ((f = fopen(path, "rb")) == NULL)
        fail_msg("cannot open %s (set CX_SRCDIR to the source tree)", path);
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc))
        fail_msg("%s: YAML error at line %zu: %s", path, parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
    paths = get(&doc, yaml_document_get_root_node(&doc), "paths");
    assert_non_null(paths);
    assert_int_equal(paths->type, YAML_MAPPING_NODE);
    ndoc = 0;
    for (p = paths->data.mapping.pairs.start; p < paths->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key), *item = yaml_document_get_node(&doc, p->value);
        assert_int_equal(item->type, YAML_MAPPING_NODE);
        for (q = item->data.mapping.pairs.start; q < item->data.mapping.pairs.top; q++) {
            yaml_node_t *mk = yaml_document_get_node(&doc, q->key), *opn = yaml_document_get_node(&doc, q->value), *v;
            size_t m;
            for (m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
                if (strcmp((const char *)mk->data.scalar.value, methods[m]) == 0)
                    break;
            if (m == sizeof(methods) / sizeof(methods[0]))
                continue; /* parameters, summary … */
            assert_true(ndoc < MAX_OPS);
            op_t *o = &doc_ops[ndoc++];
            memset(o, 0, sizeof(*o));
            for (size_t i = 0; methods[m][i] != '\0' && i < sizeof(o->method) - 1; i++)
                o->method[i] = (char)(methods[m][i] - 'a' + 'A');
            snprintf(o->path, sizeof(o->path), "%s", (const char *)k->data.scalar.value);
            if ((v = get(&doc, opn, "x-conduix-role")) != NULL && v->type == YAML_SCALAR_NODE)
                snprintf(o->role, sizeof(o->role), "%s", (const char *)v->data.scalar.value);
            v = get(&doc, opn, "security");
            o->public_security =
                v != NULL && v->type == YAML_SEQUENCE_NODE && v->data.sequence.items.start == v->data.sequence.items.top;
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
}

/* doc_path -- a route pattern as an OpenAPI path: ":id" becomes "{id}". */
static void doc_path(const char *pattern, char *out, size_t len)
{
    size_t o = 0;
    for (const char *s = pattern; *s != '\0' && o + 2 < len; s++) {
        if (*s == ':' && (s == pattern || s[-1] == '/')) {
            out[o++] = '{';
            while (s[1] != '\0' && s[1] != '/' && o + 2 < len)
                out[o++] = *++s;
            out[o++] = '}';
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

/* compare -- every difference between a route table and doc_ops, one line each, into report; the
 * number of differences. */
static int compare(const cx_route_t *routes, size_t nroutes, char *report, size_t len)
{
    int n = 0;
    size_t used = 0;
    char p[256];
#define SAY(...)                                                                                                                   \
    do {                                                                                                                           \
        n++;                                                                                                                       \
        if (used < len)                                                                                                            \
            used += (size_t)snprintf(report + used, len - used, __VA_ARGS__);                                                      \
    } while (0)

    report[0] = '\0';
    for (size_t i = 0; i < nroutes; i++) {
        size_t j;
        doc_path(routes[i].pattern, p, sizeof(p));
        for (j = 0; j < ndoc; j++)
            if (strcmp(doc_ops[j].method, routes[i].method) == 0 && strcmp(doc_ops[j].path, p) == 0)
                break;
        if (j == ndoc) {
            char lower[8] = {0};
            for (size_t c = 0; routes[i].method[c] != '\0' && c < sizeof(lower) - 1; c++)
                lower[c] = (char)(routes[i].method[c] | 0x20);
            SAY("missing in docs/openapi.yaml: %s %s (route \"%s\" of src/api/routes.c, role %s): add paths.\"%s\".%s\n",
                routes[i].method, p, routes[i].name, roles[routes[i].access], p, lower);
            continue;
        }
        if (strcmp(doc_ops[j].role, roles[routes[i].access]) != 0)
            SAY("role of %s %s: docs/openapi.yaml says x-conduix-role \"%s\", src/api/routes.c says %s\n", routes[i].method, p,
                doc_ops[j].role, roles[routes[i].access]);
    }
    for (size_t j = 0; j < ndoc; j++) {
        size_t i;
        for (i = 0; i < nroutes; i++) {
            doc_path(routes[i].pattern, p, sizeof(p));
            if (strcmp(doc_ops[j].method, routes[i].method) == 0 && strcmp(doc_ops[j].path, p) == 0)
                break;
        }
        if (i == nroutes)
            SAY("missing in src/api/routes.c: %s %s is documented in docs/openapi.yaml but not routed\n", doc_ops[j].method,
                doc_ops[j].path);
        if (doc_ops[j].public_security != (strcmp(doc_ops[j].role, "public") == 0))
            SAY("%s %s in docs/openapi.yaml: \"security: []\" must be given exactly when x-conduix-role is public (it is \"%s\")\n",
                doc_ops[j].method, doc_ops[j].path, doc_ops[j].role);
    }
#undef SAY
    return n;
}

static void t_routes_match_document(void **state)
{
    static char report[16384];
    (void)state;
    load_doc();
    assert_true(ndoc > 0);
    if (compare(cx_routes, cx_nroutes, report, sizeof(report)) != 0)
        fail_msg("the route table and docs/openapi.yaml differ:\n%s", report);
    assert_int_equal(ndoc, cx_nroutes);
}

/* The comparison itself finds each kind of difference (so the test above cannot pass by accident). */
static int h(cx_req_t *r)
{
    (void)r;
    return 0;
}

static void t_differences_are_reported(void **state)
{
    static char report[16384];
    cx_route_t t[64];
    size_t n = cx_nroutes < 60 ? cx_nroutes : 60;
    (void)state;
    load_doc();
    memcpy(t, cx_routes, n * sizeof(t[0]));
    assert_int_equal(compare(t, n, report, sizeof(report)), 0);

    /* a route the document lacks */
    t[n] = (cx_route_t){"POST", "/api/v1/things/:thing_id/poke", h, CX_ACCESS_OPERATOR, CX_BODY_NONE, "things_poke"};
    assert_int_equal(compare(t, n + 1, report, sizeof(report)), 1);
    assert_non_null(strstr(report, "missing in docs/openapi.yaml: POST /api/v1/things/{thing_id}/poke (route \"things_poke\""));

    /* a documented operation the table lacks, and a role that differs */
    cx_route_t dropped = t[0];
    t[0] = t[n - 1];
    assert_int_equal(compare(t, n - 1, report, sizeof(report)), 1);
    char want[512];
    char p[256];
    doc_path(dropped.pattern, p, sizeof(p));
    snprintf(want, sizeof(want), "missing in src/api/routes.c: %s %s is documented", dropped.method, p);
    assert_non_null(strstr(report, want));
    t[0] = dropped;
    t[1].access = t[1].access == CX_ACCESS_ADMIN ? CX_ACCESS_VIEWER : CX_ACCESS_ADMIN;
    assert_int_equal(compare(t, n, report, sizeof(report)), 1);
    assert_non_null(strstr(report, "x-conduix-role"));
}

static void t_doc_path(void **state)
{
    char p[256];
    (void)state;
    doc_path("/api/v1/agents/:id/commands/:command_id/ack", p, sizeof(p));
    assert_string_equal(p, "/api/v1/agents/{id}/commands/{command_id}/ack");
    doc_path("/health", p, sizeof(p));
    assert_string_equal(p, "/health");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_doc_path),
        cmocka_unit_test(t_routes_match_document),
        cmocka_unit_test(t_differences_are_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
