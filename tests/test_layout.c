/* tests/test_layout.c - the shape of the code: the library never writes to
 * stdout, and every #include and every call goes down the floors
 *   core -> container and kernels -> components -> SEED-X pipeline -> front-ends
 * (README, Layout) with no circle between the modules of a floor (the
 * container and the kernel layer form one module: each uses the other).
 *
 * Calls are read from the symbol tables of the objects in libseedx.a (nm),
 * includes from the sources (run from the repository root). Files this table
 * does not know (new ones) are skipped and listed with SEEDX_TEST_VERBOSE. */
#include "test.h"

/* module of each file stem, and the floor of each module */
static const struct {
    const char *stem, *module;
    int floor;
} files[] = {
    {"sx_core", "core", 0},          {"half", "core", 0},           {"seedx_core", "core", 0},
    {"threads", "core", 0},          {"gguf", "kernels", 1},        {"wtype", "kernels", 1},
    {"simd", "kernels", 1},          {"ops", "kernels", 1},         {"tokenizer", "tokenizer", 2},
    {"image_io", "image_io", 2},     {"png", "image_io", 2},        {"jpeg", "image_io", 2},
    {"nn", "nn", 2},
    {"vit", "vit", 2},               {"llama", "llama", 2},         {"detokenizer", "detokenizer", 2},
    {"unet", "unet", 2},             {"sampler", "sampler", 2},     {"vae", "vae", 2},
    {"seedx", "seedx", 3},           {"cli", "cli", 4},             {"main", "cli", 4},
    {"cli_tools", "cli", 4},
};
#define N_FILES (int)(sizeof files / sizeof files[0])

/* index into files[] of a file name ("ops_avx2.c" counts as ops), or -1 */
static int file_of(const char *name) {
    char stem[128];
    snprintf(stem, sizeof stem, "%s", name);
    char *dot = strrchr(stem, '.');
    if (dot) *dot = 0;
    if (!strncmp(stem, "ops_", 4)) snprintf(stem, sizeof stem, "ops");
    for (int i = 0; i < N_FILES; i++)
        if (!strcmp(files[i].stem, stem)) return i;
    return -1;
}

/* module graph: edge[a][b] = 1 when module a uses module b */
#define MAX_MOD 32
static const char *mods[MAX_MOD];
static int n_mods, mod_floor[MAX_MOD];
static char edge[MAX_MOD][MAX_MOD], edge_why[MAX_MOD][MAX_MOD][160];

static int mod_of(int f) {
    for (int i = 0; i < n_mods; i++)
        if (!strcmp(mods[i], files[f].module)) return i;
    mods[n_mods] = files[f].module;
    mod_floor[n_mods] = files[f].floor;
    return n_mods++;
}

static int bad_edges; /* edges that go up a floor */
static void add_edge(int from_file, int to_file, const char *why) {
    int a = mod_of(from_file), b = mod_of(to_file);
    if (a == b) return;
    if (!edge[a][b]) snprintf(edge_why[a][b], sizeof edge_why[a][b], "%s", why);
    edge[a][b] = 1;
    if (files[to_file].floor > files[from_file].floor) {
        bad_edges++;
        fprintf(stderr, "  upward: %s (floor %d -> %d)\n", why, files[from_file].floor,
                files[to_file].floor);
    }
}

/* Returns 1 and prints the circle when module m reaches itself. */
static int state[MAX_MOD], stack_[MAX_MOD], depth;
static int dfs(int m) {
    state[m] = 1;
    stack_[depth++] = m;
    for (int b = 0; b < n_mods; b++) {
        if (!edge[m][b]) continue;
        if (state[b] == 1) {
            fprintf(stderr, "  circle:");
            for (int k = 0; k < depth; k++) fprintf(stderr, " %s ->", mods[stack_[k]]);
            fprintf(stderr, " %s (%s)\n", mods[b], edge_why[m][b]);
            return 1;
        }
        if (state[b] == 0 && dfs(b)) return 1;
    }
    depth--;
    state[m] = 2;
    return 0;
}
static int has_circle(void) {
    memset(state, 0, sizeof state);
    depth = 0;
    for (int m = 0; m < n_mods; m++)
        if (state[m] == 0 && dfs(m)) return 1;
    return 0;
}

/* The objects of libseedx.a as "member.o" -> their defined and undefined symbols. */
typedef struct {
    char member[64], sym[128];
    int undef;
} sym_row;
static sym_row *syms;
static int n_syms;

static int read_archive(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "nm -A %s/libseedx.a 2>/dev/null", t_build());
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[512];
    int cap = 0;
    while (fgets(line, sizeof line, p)) {
        /* build/libseedx.a:gguf.o:0000000000000010 T sx_gguf_open
         * build/libseedx.a:gguf.o:                 U sx_err */
        char *a = strstr(line, ".a:");
        if (!a) continue;
        char *m = a + 3, *c = strchr(m, ':');
        if (!c) continue;
        *c = 0;
        char type = 0, name[128];
        if (sscanf(c + 1, "%*[0-9a-f ]%c %127s", &type, name) != 2 &&
            sscanf(c + 1, " %c %127s", &type, name) != 2)
            continue;
        if (n_syms == cap) {
            cap = cap ? cap * 2 : 4096;
            sym_row *ns = realloc(syms, sizeof *syms * (size_t)cap);
            if (!ns) break;
            syms = ns;
        }
        sym_row *r = &syms[n_syms++];
        snprintf(r->member, sizeof r->member, "%s", m);
        snprintf(r->sym, sizeof r->sym, "%s", name);
        r->undef = type == 'U';
        if (!r->undef && !strchr("TDBRCVW", type)) n_syms--; /* local / debug symbols */
    }
    return pclose(p) == 0 && n_syms > 0 ? 0 : -1;
}

/* No object of the library writes to stdout: no printf/puts/putchar family,
 * no reference to the stdout stream (fprintf/fputs/fwrite/fputc to stdout all
 * need it), and no source mentions stdout or file descriptor 1. */
static void test_library_does_not_print(void) {
    static const char *banned[] = {"printf",   "vprintf",          "puts",          "putchar",
                                   "putchar_unlocked", "__printf_chk", "__vprintf_chk",
                                   "stdout",   "_IO_stdout",       "__stdoutp"};
    int members = 0;
    for (int i = 0; i < n_syms; i++) {
        if (i == 0 || strcmp(syms[i].member, syms[i - 1].member)) {
            members++;
            /* the source of this member */
            char src[128], cmd[300];
            snprintf(src, sizeof src, "%s", syms[i].member);
            char *dot = strrchr(src, '.');
            if (dot) snprintf(dot, sizeof src - (size_t)(dot - src), ".c");
            snprintf(cmd, sizeof cmd, "grep -n -w -E 'stdout|STDOUT_FILENO' %s >&2", src);
            CHECKF(system(cmd) != 0, "%s mentions stdout", src);
        }
        if (!syms[i].undef) continue;
        for (size_t k = 0; k < sizeof banned / sizeof banned[0]; k++)
            CHECKF(strcmp(syms[i].sym, banned[k]) != 0, "%s uses %s", syms[i].member, banned[k]);
    }
    CHECKF(members >= 15, "only %d library objects", members);
    /* and the front-end is not in the library */
    for (int i = 0; i < n_syms; i++)
        CHECKF(syms[i].undef || (strcmp(syms[i].sym, "main") && strncmp(syms[i].sym, "sx_cmd_", 7)),
               "%s defines %s", syms[i].member, syms[i].sym);
}

/* Every quoted #include of a top-level source goes to the same or a lower
 * floor; the modules' include + call graph has no circle. */
static void test_floors(void) {
    FILE *p = popen("ls *.c *.h", "r");
    CHECK(p != NULL);
    if (!p) return;
    char name[256];
    int n_src = 0;
    while (fscanf(p, "%255s", name) == 1) {
        int f = file_of(name);
        if (f < 0) {
            if (getenv("SEEDX_TEST_VERBOSE")) printf("    not in the floor table: %s\n", name);
            continue;
        }
        n_src++;
        FILE *s = fopen(name, "r");
        CHECK(s != NULL);
        if (!s) continue;
        char line[512];
        while (fgets(line, sizeof line, s)) {
            char h[128], why[400];
            if (sscanf(line, "#include \"%127[^\"]\"", h) != 1) continue;
            int t = file_of(h);
            if (t < 0) continue;
            snprintf(why, sizeof why, "%s includes %s", name, h);
            add_edge(f, t, why);
        }
        fclose(s);
    }
    pclose(p);
    CHECKF(n_src >= 30, "only %d sources", n_src);
    /* calls: an undefined symbol of one member defined by another */
    int n_calls = 0;
    for (int i = 0; i < n_syms; i++) {
        if (!syms[i].undef) continue;
        int from = file_of(syms[i].member);
        if (from < 0) continue;
        for (int j = 0; j < n_syms; j++) {
            if (syms[j].undef || strcmp(syms[j].sym, syms[i].sym)) continue;
            int to = file_of(syms[j].member);
            if (to < 0 || to == from) break;
            char why[400];
            snprintf(why, sizeof why, "%s calls %s (%s)", syms[i].member, syms[i].sym,
                     syms[j].member);
            add_edge(from, to, why);
            n_calls++;
            break;
        }
    }
    CHECKF(n_calls > 100, "only %d calls between library objects", n_calls);
    CHECK(bad_edges == 0);
    CHECK(!has_circle());
    /* the circles this layout removed stay removed */
    int unet = -1, sampler = -1, kernels = -1, core = -1;
    for (int m = 0; m < n_mods; m++) {
        if (!strcmp(mods[m], "unet")) unet = m;
        if (!strcmp(mods[m], "sampler")) sampler = m;
        if (!strcmp(mods[m], "kernels")) kernels = m;
        if (!strcmp(mods[m], "core")) core = m;
    }
    CHECK(unet >= 0 && sampler >= 0 && kernels >= 0 && core >= 0);
    if (unet >= 0 && sampler >= 0) CHECK(edge[sampler][unet] && !edge[unet][sampler]);
    if (kernels >= 0 && core >= 0) CHECK(edge[kernels][core] && !edge[core][kernels]);
    /* the container's header and source include no header of the kernel layer */
    CHECK(system("grep -l '#include \"ops' gguf.c gguf.h >&2") != 0);
}

int main(void) {
    TEST_INIT();
    if (read_archive() != 0) {
        fprintf(stderr, "cannot read the symbols of %s/libseedx.a with nm\n", t_build());
        return 1;
    }
    RUN(test_library_does_not_print);
    RUN(test_floors);
    free(syms);
    return TEST_DONE();
}
