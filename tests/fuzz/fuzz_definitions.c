/* fuzz_definitions.c — feeds a JSON document to the definitions reader
 * (routing/definitions.c): what POST /api/definitions and the data
 * directory's definitions.json hand it.
 *
 * Checked: a refusal says why and leaves nothing allocated (LeakSanitizer);
 * every accepted queue prints back (rt_queue_json) to an entry that reads
 * to the same queue; every accepted binding's arguments, carried as AMQP
 * bytes to the manager, decode back to the JSON they came from.
 */
#include <jansson.h>
#include <proton/codec.h>
#include <string.h>

#include "routing/rt.h"
#include "tests/fuzz/fuzz.h"

static void queue_round_trip(const rt_req_queue *q)
{
    json_t *j = rt_queue_json(q->name, &q->args);
    FUZZ_CHECK(j);
    rt_req_queue again;
    char err[256] = "";
    int rc = rt_queue_req_json(j, NULL, &again, "queue", err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "printed queue refused: %s\n", err);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(strcmp(again.name, q->name) == 0);
    json_t *a1 = rt_qargs_json(&q->args), *a2 = rt_qargs_json(&again.args);
    FUZZ_CHECK(a1 && a2 && json_equal(a1, a2));
    FUZZ_CHECK(again.args.durable == q->args.durable && again.args.auto_delete == q->args.auto_delete);
    json_decref(a1);
    json_decref(a2);
    json_decref(j);
}

static void binding_args(const json_t *entry, const rt_def_bind *b)
{
    FUZZ_CHECK(b->len == sizeof *b->req + b->req->args_len);
    const json_t *args = json_object_get(entry, "arguments");
    if (!b->req->args_len) {
        FUZZ_CHECK(!args || json_is_null(args) || !json_object_size(args));
        return;
    }
    pn_data_t *d = pn_data(16);
    FUZZ_CHECK(d);
    FUZZ_CHECK(pn_data_decode(d, (const char *)(b->req + 1), b->req->args_len) == (ssize_t)b->req->args_len);
    pn_data_rewind(d);
    FUZZ_CHECK(pn_data_next(d));
    json_t *back = rt_json_get(d);
    FUZZ_CHECK(back && json_equal(back, args));
    json_decref(back);
    pn_data_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, size, 0, &je);
    if (!doc)
        return 0;
    rt_defs defs;
    char err[256] = "";
    if (rt_definitions_parse(doc, &defs, err, sizeof err) < 0) {
        FUZZ_CHECK(err[0]);
        FUZZ_CHECK(!defs.queues && !defs.exchanges && !defs.bindings);
        json_decref(doc);
        return 0;
    }
    for (size_t i = 0; i < defs.nqueues; i++)
        queue_round_trip(&defs.queues[i]);
    for (size_t i = 0; i < defs.nexchanges; i++)
        FUZZ_CHECK(defs.exchanges[i].name[0]);
    for (size_t i = 0; i < defs.nbindings; i++)
        binding_args(json_array_get(json_object_get(doc, "bindings"), i), &defs.bindings[i]);
    rt_defs_free(&defs);
    json_decref(doc);
    return 0;
}
