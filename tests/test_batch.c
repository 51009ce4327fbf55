/*
 * test_batch.c — the batch file (src/pipeline/batch.h): a good batch with per-job overrides
 * over the defaults, the parameter hash, every kind of bad line reported with its line number
 * while the good lines stay good, blank lines, CRLF, a byte-order mark, and files that hold no
 * jobs at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "models/sched.h"
#include "pipeline/batch.h"
#include "pipeline/options.h"

#define LABEL "jobs.jsonl"

/* The command line's options: --model /m --prompt dflt --steps 20 --seed 7. */
static void defaults(wr_gen_opts *d) {
    wr_gen_opts_init(d);
    ck_assert_int_eq(wr_gen_opts_set(d, "model", "/m"), WR_OK);
    ck_assert_int_eq(wr_gen_opts_set(d, "prompt", "dflt"), WR_OK);
    ck_assert_int_eq(wr_gen_opts_set(d, "steps", "20"), WR_OK);
    ck_assert_int_eq(wr_gen_opts_set(d, "seed", "7"), WR_OK);
}

static wr_status parse(wr_batch *b, const char *text, const wr_gen_opts *d, const char *fmt) {
    return wr_batch_parse(b, text, strlen(text), LABEL, d, "/o/", fmt);
}

/* The job on `line`, or NULL. */
static const wr_batch_job *at_line(const wr_batch *b, int line) {
    for (int i = 0; i < b->n; i++)
        if (b->jobs[i].line == line) return &b->jobs[i];
    return NULL;
}

/* The job on `line` is bad, its message names the file and line and holds `needle`. */
static void expect_bad(const wr_batch *b, int line, const char *needle) {
    char pre[64];
    const wr_batch_job *j = at_line(b, line);
    ck_assert_msg(j != NULL, "no job on line %d", line);
    ck_assert_msg(j->bad, "line %d should be bad (want \"%s\")", line, needle);
    snprintf(pre, sizeof pre, LABEL " line %d: ", line);
    ck_assert_msg(strncmp(j->err, pre, strlen(pre)) == 0, "line %d: %s", line, j->err);
    ck_assert_msg(strstr(j->err, needle) != NULL, "line %d: want \"%s\" in: %s", line, needle,
                  j->err);
    ck_assert_uint_eq(j->hash, 0);
}

static void expect_good(const wr_batch *b, int line) {
    const wr_batch_job *j = at_line(b, line);
    ck_assert_msg(j != NULL, "no job on line %d", line);
    ck_assert_msg(!j->bad, "line %d should be good: %s", line, j->err);
    ck_assert_str_eq(j->err, "");
}

START_TEST(test_good) {
    wr_gen_opts d;
    defaults(&d);
    const char *text =
        "{\"name\": \"a\", \"prompt\": \"a cat\"}\n"
        "{\"name\": \"b\", \"steps\": 7, \"negative_prompt\": \"blur\", \"format\": \"png\"}\n"
        "{\"name\": \"c-2.x_y\", \"size\": \"64x32\", \"frames\": 5, \"seed\": "
        "\"12345678901234567\", \"guidance\": 3.5, \"shift\": 2, \"scheduler\": \"euler\", "
        "\"fps\": 8, \"init-noise\": \"/n.safetensors\", \"format\": \"y4m\"}\n"
        "{\"name\": \"d\", \"prompt\": \"a cat\"}\n";
    wr_batch b;
    ck_assert_int_eq(parse(&b, text, &d, "mp4"), WR_OK);
    ck_assert_int_eq(b.n, 4);
    ck_assert_int_eq(b.nbad, 0);
    for (int i = 0; i < 4; i++) {
        expect_good(&b, i + 1);
        ck_assert_int_eq(b.jobs[i].line, i + 1);
        ck_assert_str_eq(b.jobs[i].g.model, "/m");
        ck_assert_ptr_ne(b.jobs[i].g.owned, d.owned); /* its own array */
        ck_assert_str_eq(b.jobs[i].g.out, b.jobs[i].out);
        ck_assert_ptr_ne(b.jobs[i].g.out, b.jobs[i].out); /* a copy: the job may move */
    }
    const wr_batch_job *a = &b.jobs[0], *bb = &b.jobs[1], *c = &b.jobs[2], *dd = &b.jobs[3];
    /* a: the line's prompt, the rest from the defaults (diffusers' size and frames) */
    ck_assert_str_eq(a->name, "a");
    ck_assert_str_eq(a->format, "mp4");
    ck_assert_str_eq(a->out, "/o/a.mp4");
    ck_assert_str_eq(a->g.prompt, "a cat");
    ck_assert_ptr_null(a->g.negative);
    ck_assert_int_eq(a->g.steps, 20);
    ck_assert_uint_eq(a->g.seed, 7);
    ck_assert_int_eq(a->g.width, 832);
    ck_assert_int_eq(a->g.height, 480);
    ck_assert_int_eq(a->g.frames, 81);
    /* b: the defaults' prompt (borrowed from them), its own steps and negative prompt */
    ck_assert_ptr_eq(bb->g.prompt, d.prompt);
    ck_assert_str_eq(bb->g.negative, "blur");
    ck_assert_int_eq(bb->g.steps, 7);
    ck_assert_str_eq(bb->format, "png");
    ck_assert_str_eq(bb->out, "/o/b"); /* a folder of frames */
    /* c: every per-job option */
    ck_assert_str_eq(c->out, "/o/c-2.x_y.y4m");
    ck_assert_int_eq(c->g.width, 64);
    ck_assert_int_eq(c->g.height, 32);
    ck_assert_int_eq(c->g.frames, 5);
    ck_assert_int_eq(c->g.steps, 20);
    ck_assert_uint_eq(c->g.seed, 12345678901234567ull);
    ck_assert(c->g.guidance == 3.5);
    ck_assert(c->g.shift == 2.0);
    ck_assert(c->g.fps == 8.0);
    ck_assert_int_eq(c->g.scheduler, WR_SCHED_EULER);
    ck_assert_str_eq(c->g.init_noise, "/n.safetensors");
    ck_assert(c->g.given & ((uint64_t)1 << WR_OPT_INIT_NOISE));
    ck_assert(c->g.given & ((uint64_t)1 << WR_OPT_MODEL)); /* the defaults' bits kept */
    /* the defaults are untouched */
    ck_assert_int_eq(d.steps, 20);
    ck_assert_ptr_null(d.negative);
    ck_assert_ptr_null(d.out);

    /* the hash: names aside, the same parameters give the same hash */
    ck_assert_uint_ne(a->hash, 0);
    ck_assert_uint_eq(a->hash, dd->hash);
    ck_assert_uint_eq(a->hash, wr_batch_hash(a));
    ck_assert_uint_ne(a->hash, bb->hash);
    ck_assert_uint_ne(a->hash, c->hash);
    ck_assert_uint_ne(bb->hash, c->hash);
    /* each parameter moves it */
    for (int k = 0; k < 14; k++) {
        wr_batch_job x = *a;
        switch (k) {
        case 0:
            x.g.model = "/m2";
            break;
        case 1:
            x.g.prompt = "a cat.";
            break;
        case 2:
            x.g.negative = "";
            break; /* NULL and "" differ */
        case 3:
            x.g.width = 848;
            break;
        case 4:
            x.g.height = 496;
            break;
        case 5:
            x.g.frames = 85;
            break;
        case 6:
            x.g.steps = 21;
            break;
        case 7:
            x.g.guidance = 5.0000000000000009;
            break; /* the next double */
        case 8:
            x.g.shift = 3.0;
            break;
        case 9:
            x.g.fps = 24.0;
            break;
        case 10:
            x.g.seed = 8;
            break;
        case 11:
            x.g.scheduler = WR_SCHED_EULER;
            break;
        case 12:
            x.g.init_noise = "/n";
            break;
        default:
            snprintf(x.format, sizeof x.format, "y4m");
            break;
        }
        ck_assert_msg(wr_batch_hash(&x) != a->hash, "parameter %d does not move the hash", k);
        snprintf(x.name, sizeof x.name, "other"); /* the name does not */
        snprintf(x.out, sizeof x.out, "/elsewhere/other.mp4");
        wr_batch_job y = x;
        ck_assert_uint_eq(wr_batch_hash(&x), wr_batch_hash(&y));
    }
    /* a prompt cannot imitate the next field (the strings are length-prefixed) */
    wr_batch_job x = *a, y = *a;
    x.g.prompt = "p\nnegative_prompt=1:n", x.g.negative = NULL;
    y.g.prompt = "p", y.g.negative = "n";
    ck_assert_uint_ne(wr_batch_hash(&x), wr_batch_hash(&y));
    /* stable: the same file parsed again gives the same hashes */
    wr_batch b2;
    ck_assert_int_eq(parse(&b2, text, &d, "mp4"), WR_OK);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(b2.jobs[i].hash, b.jobs[i].hash);
    /* another default format moves the jobs without a "format" of their own */
    wr_batch b3;
    ck_assert_int_eq(parse(&b3, text, &d, "y4m"), WR_OK);
    ck_assert_str_eq(b3.jobs[0].out, "/o/a.y4m");
    ck_assert_uint_ne(b3.jobs[0].hash, b.jobs[0].hash);
    ck_assert_uint_eq(b3.jobs[2].hash, b.jobs[2].hash);
    wr_batch_free(&b3);
    wr_batch_free(&b2);
    wr_batch_free(&b);
    ck_assert_ptr_null(b.jobs);
    ck_assert_int_eq(b.n, 0);
    wr_batch_free(&b); /* twice */
    wr_batch_free(NULL);
    wr_gen_opts_free(&d);
}
END_TEST

START_TEST(test_bad_lines) {
    wr_gen_opts d;
    defaults(&d);
    const char *text = "{\"name\": \"ok1\", \"prompt\": \"x\"}\n"          /* 1 */
                       "not json\n"                                        /* 2 */
                       "[\"name\", \"x\"]\n"                               /* 3 */
                       "{\"prompt\": \"x\"}\n"                             /* 4 */
                       "{\"name\": \"../x\"}\n"                            /* 5 */
                       "{\"name\": \"ok1\"}\n"                             /* 6 */
                       "{\"name\": \"u\", \"bogus\": 1}\n"                 /* 7 */
                       "{\"name\": \"m\", \"model\": \"/other\"}\n"        /* 8 */
                       "{\"name\": \"s1\", \"steps\": \"many\"}\n"         /* 9 */
                       "{\"name\": \"s2\", \"steps\": 2.5}\n"              /* 10 */
                       "{\"name\": \"f\", \"frames\": 6}\n"                /* 11 */
                       "{\"name\": \"z\", \"size\": \"8208x16\"}\n"        /* 12 */
                       "# a comment\n"                                     /* 13 */
                       "{\"name\": \"ok2\", \"negative_prompt\": \"n\"}\n" /* 14 */
                       "{\"name\": \"o\", \"out\": \"/x.mp4\"}\n"          /* 15 */
                       "{\"name\": \"results\"}\n"                         /* 16 */
                       "{\"name\": \"x\"}\n"                               /* 17 */
                       "{\"name\": \"x.mp4\", \"format\": \"png\"}\n"      /* 18 */
                       "{\"name\": \"fm\", \"format\": \"gif\"}\n"         /* 19 */
                       "{\"name\": \"t\"} {\"name\": \"t2\"}\n"            /* 20 */
                       "{\"name\": \"tw\", \"steps\": 3, \"steps\": 4}\n"  /* 21 */
                       "{\"name\": \"np\", \"negative-prompt\": \"a\", "
                       "\"negative_prompt\": \"b\"}\n"                               /* 22 */
                       "{\"name\": \"pu\", \"prompt\": \"\xff\"}\n"                  /* 23 */
                       "{\"name\": \"cfg\", \"config\": \"x.json\"}\n"               /* 24 */
                       "{\"name\": \"n5\", \"name\": \"n6\"}\n"                      /* 25 */
                       "{\"name\": 5}\n"                                             /* 26 */
                       "{\"name\": \"sz\", \"size\": \"33x33\"}\n"                   /* 27 */
                       "{\"name\": \"sd\", \"save_latents\": \"/l.safetensors\"}\n"  /* 28 */
                       "{\"name\": \"fr\", \"frames\": true}\n"                      /* 29 */
                       "{\"name\": \".hidden\"}\n"                                   /* 30 */
                       "{\"name\": \"cp\", \"cp_size\": 2}\n"                        /* 31 */
                       "{\"name\": \"ok3\", \"seed\": 1, \"scheduler\": \"ddim\"}\n" /* 32 */
                       "{\"name\": \"a/b\"}\n"                                       /* 33 */
                       "{\"name\": \"\"}\n"                                          /* 34 */
                       "{}\n"                                                        /* 35 */
                       "\"just a string\"\n";                                        /* 36 */
    wr_batch b;
    ck_assert_int_eq(parse(&b, text, &d, "mp4"), WR_OK);
    ck_assert_int_eq(b.n, 36);
    expect_good(&b, 1);
    expect_bad(&b, 2, "not valid JSON");
    expect_bad(&b, 3, "got an array");
    expect_bad(&b, 4, "no \"name\"");
    expect_bad(&b, 5, "not a safe file name");
    expect_bad(&b, 6, "already line 1's");
    expect_bad(&b, 7, "unknown field 'bogus'");
    expect_bad(&b, 8, "\"model\" is batch-wide: give it on the command line");
    expect_bad(&b, 9, "--steps must be a whole number");
    expect_bad(&b, 10, "--steps must be a whole number");
    expect_bad(&b, 11, "must be 4k+1");
    expect_bad(&b, 12, "--size 8208x16");
    expect_bad(&b, 13, "not valid JSON");
    expect_good(&b, 14);
    ck_assert_str_eq(at_line(&b, 14)->g.negative, "n");
    expect_bad(&b, 15, "\"out\" is batch-wide");
    expect_bad(&b, 16, "not a safe file name");
    expect_good(&b, 17);
    expect_bad(&b, 18, "its output /o/x.mp4 is already line 17's");
    expect_bad(&b, 19, "\"format\" must be");
    expect_bad(&b, 20, "text after the JSON object");
    expect_bad(&b, 21, "\"steps\" is given twice");
    expect_bad(&b, 22, "given twice");
    expect_bad(&b, 23, "not valid UTF-8");
    expect_bad(&b, 24, "\"config\" is batch-wide");
    expect_bad(&b, 25, "\"name\" is given twice");
    expect_bad(&b, 26, "\"name\" must be a string, got a number");
    /* wr_gen_opts_finish takes 33x33 (in bounds); the model's factor of 16 is checked when
     * the job runs (wr_request_check), where it fails alone */
    expect_good(&b, 27);
    expect_bad(&b, 28, "\"save_latents\" is batch-wide");
    expect_bad(&b, 29, "\"frames\" must be a number");
    expect_bad(&b, 30, "not a safe file name");
    expect_bad(&b, 31, "\"cp_size\" is batch-wide");
    expect_bad(&b, 32, "--scheduler must be unipc or euler");
    expect_bad(&b, 33, "not a safe file name");
    expect_bad(&b, 34, "not a safe file name");
    expect_bad(&b, 35, "no \"name\"");
    expect_bad(&b, 36, "got a string");
    ck_assert_int_eq(b.nbad, 36 - 4);
    /* a bad line keeps the name it had (for the ledger); one without has "" */
    ck_assert_str_eq(at_line(&b, 7)->name, "u");
    ck_assert_str_eq(at_line(&b, 4)->name, "");
    ck_assert_str_eq(at_line(&b, 2)->name, "");
    wr_batch_free(&b);

    /* an unsafe name of 101 bytes; 100 is fine */
    char line[400], n100[101];
    memset(n100, 'a', 100);
    n100[100] = '\0';
    snprintf(line, sizeof line, "{\"name\": \"%s\"}\n{\"name\": \"%sb\"}\n", n100, n100);
    ck_assert_int_eq(parse(&b, line, &d, NULL), WR_OK);
    ck_assert_int_eq(b.n, 2);
    expect_good(&b, 1);
    ck_assert_str_eq(b.jobs[0].format, "y4m"); /* NULL: y4m */
    expect_bad(&b, 2, "not a safe file name");
    wr_batch_free(&b);
    wr_gen_opts_free(&d);
}
END_TEST

START_TEST(test_no_prompt) {
    wr_gen_opts d;
    wr_gen_opts_init(&d);
    ck_assert_int_eq(wr_gen_opts_set(&d, "model", "/m"), WR_OK);
    wr_batch b;
    ck_assert_int_eq(
        parse(&b, "{\"name\": \"a\"}\n{\"name\": \"b\", \"prompt\": \"p\"}\n", &d, "mp4"), WR_OK);
    expect_bad(&b, 1, "no \"prompt\"");
    expect_good(&b, 2);
    ck_assert_int_eq(b.nbad, 1);
    wr_batch_free(&b);
    wr_gen_opts_free(&d);
}
END_TEST

/* The defaults finished without --model: the bundled model and its defaults, which the jobs
 * keep unless they give their own. */
START_TEST(test_bundled) {
    wr_gen_opts d;
    wr_gen_opts_init(&d);
    ck_assert_int_eq(wr_gen_opts_set(&d, "prompt", "p"), WR_OK);
    ck_assert_int_eq(wr_gen_opts_set(&d, "out", "/placeholder.mp4"), WR_OK);
    ck_assert_int_eq(wr_gen_opts_finish(&d, "/bundled"), WR_OK);
    ck_assert_int_eq(d.bundled, 1);
    d.out = NULL;
    wr_batch b;
    ck_assert_int_eq(parse(&b, "{\"name\": \"a\"}\n{\"name\": \"b\", \"frames\": 5}\n", &d, "mp4"),
                     WR_OK);
    expect_good(&b, 1);
    expect_good(&b, 2);
    ck_assert_str_eq(b.jobs[0].g.model, "/bundled");
    ck_assert_int_eq(b.jobs[0].g.width, WR_BUNDLED_WIDTH);
    ck_assert_int_eq(b.jobs[0].g.frames, WR_BUNDLED_FRAMES);
    ck_assert_int_eq(b.jobs[0].g.steps, WR_BUNDLED_STEPS);
    ck_assert_int_eq(b.jobs[1].g.frames, 5);
    ck_assert_int_eq(b.jobs[1].g.steps, WR_BUNDLED_STEPS);
    wr_batch_free(&b);
    wr_gen_opts_free(&d);
}
END_TEST

START_TEST(test_blank_crlf) {
    wr_gen_opts d;
    defaults(&d);
    wr_batch b;
    /* BOM, blank lines (empty, spaces and tabs, a lone '\r'), CRLF, no last newline */
    const char *text = "\xEF\xBB\xBF\r\n"
                       "{\"name\": \"a\", \"steps\": 3}\r\n"
                       "   \t \r\n"
                       "\n"
                       "{\"name\": \"b\"}  \r\n"
                       "\r\n"
                       "{\"name\": \"c\", \"prompt\": \"q\"}";
    ck_assert_int_eq(parse(&b, text, &d, "mp4"), WR_OK);
    ck_assert_int_eq(b.n, 3);
    ck_assert_int_eq(b.nbad, 0);
    ck_assert_int_eq(b.jobs[0].line, 2);
    ck_assert_int_eq(b.jobs[1].line, 5);
    ck_assert_int_eq(b.jobs[2].line, 7);
    ck_assert_str_eq(b.jobs[0].name, "a");
    ck_assert_int_eq(b.jobs[0].g.steps, 3);
    ck_assert_str_eq(b.jobs[2].g.prompt, "q");
    wr_batch_free(&b);
    /* a bad line after blank lines names its real line */
    ck_assert_int_eq(parse(&b, "\n\n{\"name\": \"a\"}\r\n\r\n{oops}\r\n", &d, "mp4"), WR_OK);
    ck_assert_int_eq(b.n, 2);
    expect_good(&b, 3);
    expect_bad(&b, 5, "not valid JSON");
    wr_batch_free(&b);
    /* the text need not be NUL-terminated: only len bytes are read */
    const char buf[] = "{\"name\": \"a\"}\n{\"name\": \"b\"}XXXX";
    ck_assert_int_eq(wr_batch_parse(&b, buf, strlen(buf) - 4, LABEL, &d, "/o", "png"), WR_OK);
    ck_assert_int_eq(b.n, 2);
    ck_assert_int_eq(b.nbad, 0);
    ck_assert_str_eq(b.jobs[1].out, "/o/b");
    wr_batch_free(&b);
    wr_gen_opts_free(&d);
}
END_TEST

START_TEST(test_no_jobs) {
    wr_gen_opts d;
    defaults(&d);
    wr_batch b;
    ck_assert_int_eq(wr_batch_parse(&b, "", 0, LABEL, &d, "/o", "mp4"), WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), LABEL " holds no jobs"));
    ck_assert_int_eq(b.n, 0);
    ck_assert_ptr_null(b.jobs);
    ck_assert_int_eq(parse(&b, "\n  \r\n\t\n", &d, "mp4"), WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "holds no jobs"));
    ck_assert_int_eq(parse(&b, "\xEF\xBB\xBF", &d, "mp4"), WR_ERR_INVALID_ARG);
    /* not text: a NUL byte */
    const char nul[] = "{\"name\": \"a\"}\n{\"na\0me\": \"b\"}\n";
    ck_assert_int_eq(wr_batch_parse(&b, nul, sizeof nul - 1, LABEL, &d, "/o", "mp4"),
                     WR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "NUL byte on line 2"));
    ck_assert_ptr_null(b.jobs);
    /* too many jobs: refused before anything is allocated */
    const size_t nmany = (size_t)WR_BATCH_MAX_JOBS + 1;
    char *many = malloc(3 * nmany + 1);
    ck_assert_ptr_nonnull(many);
    for (size_t i = 0; i < nmany; i++) memcpy(many + 3 * i, "{}\n", 3);
    ck_assert_int_eq(wr_batch_parse(&b, many, 3 * nmany, LABEL, &d, "/o", "mp4"),
                     WR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(wr_error_detail(), "more than the 100000"));
    free(many);
    /* the call's own arguments */
    ck_assert_int_eq(parse(&b, "{\"name\": \"a\"}", &d, "gif"), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_batch_parse(&b, "{}", 2, LABEL, &d, "", "mp4"), WR_ERR_INVALID_ARG);
    ck_assert_int_eq(wr_batch_parse(&b, "{}", 2, LABEL, &d, NULL, "mp4"), WR_ERR_INVALID_ARG);
    /* --out-dir "/": "/name.mp4" */
    ck_assert_int_eq(wr_batch_parse(&b, "{\"name\": \"a\"}", 13, LABEL, &d, "/", "mp4"), WR_OK);
    ck_assert_str_eq(b.jobs[0].out, "/a.mp4");
    wr_batch_free(&b);
    wr_gen_opts_free(&d);
}
END_TEST

Suite *wr_test_suite(void) {
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_good);
    tcase_add_test(tc, test_bad_lines);
    tcase_add_test(tc, test_no_prompt);
    tcase_add_test(tc, test_bundled);
    tcase_add_test(tc, test_blank_crlf);
    tcase_add_test(tc, test_no_jobs);
    suite_add_tcase(s, tc);
    return s;
}
