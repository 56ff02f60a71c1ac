/*
 * src/api/users.c -- people and their tokens, for admins: the users, a user's role, a user's sessions
 * (one per token issued to them), and the revocation of any token by its jti.
 *
 * The Conduix web UI reads the user list as data.users and changes a role with PUT /users/:id/role
 * {"role"}: the list page carries its array under both "items" (the API's page) and "users", and that
 * route has the handler of PUT /users/:id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conduix/api.h"
#include "conduix/cx.h"
#include "conduix/reply.h"
#include "conduix/shapes.h"
#include "conduix/sessions.h"
#include "conduix/users.h"
#include "conduix/utf8.h"

#define SEARCH_MAX 255 /* characters */

/* user_role -- the role a user may be given, named s; CX_ROLE_NONE for anything else (agent included). */
static cx_role_t user_role(const char *s)
{
    cx_role_t r = cx_role_parse(s);
    return cx_role_is_user(r) ? r : CX_ROLE_NONE;
}

/* GET /users?role=&search= -- a page of users; the web UI reads it as data.users. */
int cx_api_users_list(cx_req_t *r)
{
    const char *rq = cx_req_query(r, "role"), *search = cx_req_query(r, "search");
    cx_role_t role = CX_ROLE_NONE;
    cx_user_t *users;
    size_t n;
    int64_t total;
    int page, size, rc;
    long chars;

    if (cx_req_paging(r, &page, &size) != CX_OK)
        return 0;
    if (rq != NULL && (role = user_role(rq)) == CX_ROLE_NONE)
        return cx_reply_validation(r, "role", "must be one of " CX_USER_ROLES_TEXT);
    if (search != NULL && ((chars = cx_utf8_check(search, strlen(search), NULL)) < 0 || chars > SEARCH_MAX))
        return cx_reply_validation(r, "search", "must be valid UTF-8, at most 255 characters");
    if ((rc = cx_db_users_list(role, search, page, size, &users, &n, &total)) != CX_OK)
        return cx_reply_status_for(r, rc, "users");
    json_object *items = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(items, cx_user_json(&users[i]));
    cx_db_users_free(users, n);
    return cx_reply_page_as(r, items, "users", total, page, size);
}

int cx_api_users_get(cx_req_t *r)
{
    cx_user_t u;
    int rc = cx_db_user_get(cx_req_param(r, "id"), &u);

    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "user");
    return cx_reply_ok(r, 200, cx_user_json(&u), NULL);
}

int cx_api_users_update_body(json_object *body, const char **role, const char **field, const char **why)
{
    json_object *v = NULL;

    *role = NULL;
    *field = "body";
    *why = "must be a JSON object {\"role\": \"…\"}";
    if (!json_object_is_type(body, json_type_object))
        return CX_INVALID;
    json_object_object_foreach(body, key, val)
    {
        (void)val;
        if (strcmp(key, "role") != 0) {
            *field = key;
            *why = "unknown field; allowed: role";
            return CX_INVALID;
        }
    }
    *field = "role";
    *why = "is required: one of " CX_USER_ROLES_TEXT;
    if (!json_object_object_get_ex(body, "role", &v) || !json_object_is_type(v, json_type_string))
        return CX_INVALID;
    *why = "must be one of " CX_USER_ROLES_TEXT;
    if ((size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v)) ||
        user_role(json_object_get_string(v)) == CX_ROLE_NONE)
        return CX_INVALID;
    *role = json_object_get_string(v);
    *field = *why = NULL;
    return CX_OK;
}

/* PUT /users/:id and PUT /users/:id/role, {"role"} -- the only field an admin sets; the rest comes from
 * the provider. */
int cx_api_users_update(cx_req_t *r)
{
    const char *name, *field, *why;
    cx_role_t role;
    cx_user_t u;
    int rc;

    if (cx_api_users_update_body(r->body, &name, &field, &why) != CX_OK)
        return cx_reply_validation(r, field, why);
    role = user_role(name);
    if ((rc = cx_session_set_role(cx_req_param(r, "id"), role, cx_req_actor(r), r->request_id, &u)) != CX_OK)
        return cx_reply_status_for(r, rc, "user");
    return cx_reply_ok(r, 200, cx_user_json(&u), NULL);
}

int cx_api_users_sessions(cx_req_t *r)
{
    const char *id = cx_req_param(r, "id");
    cx_session_t *ss;
    cx_user_t u;
    size_t n;
    int64_t total;
    int page, size, rc;

    if (cx_req_paging(r, &page, &size) != CX_OK)
        return 0;
    if ((rc = cx_db_user_get(id, &u)) != CX_OK)
        return cx_reply_status_for(r, rc, "user");
    if ((rc = cx_db_sessions_of_user(id, page, size, &ss, &n, &total)) != CX_OK)
        return cx_reply_status_for(r, rc, "sessions");
    json_object *items = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(items, cx_session_json(&ss[i]));
    cx_db_sessions_free(ss, n);
    return cx_reply_page(r, items, total, page, size);
}

/* DELETE /sessions/:jti -- revoke any token, also one never recorded (minted while MySQL was down). */
int cx_api_sessions_delete(cx_req_t *r)
{
    const char *jti = cx_req_param(r, "jti");
    cx_session_t s;
    int known, rc;

    if (strlen(jti) > 64)
        return cx_reply_validation(r, "jti", "is at most 64 characters");
    /* unknown tokens are kept revoked for the longest life a token may have (100 years) */
    rc = cx_session_revoke(jti, NULL, (int64_t)time(NULL) + (int64_t)100 * 365 * 86400, cx_req_actor(r), "session_revoke",
                           r->request_id, &s, &known);
    if (rc != CX_OK)
        return cx_reply_status_for(r, rc, "session");
    return cx_reply_ok(r, 200, cx_session_json(&s),
                       known ? "revoked: the token is refused from now on"
                             : "this jti was never recorded; it is revoked anyway and refused from now on");
}
