/* tests/bench_image.c - decode a 12 MP PNG and JPEG, resize 4032x3024 ->
 * 896x448 (BICUBIC), encode a 12 MP PNG and run SEED-X any-res on the 12 MP
 * photo; Pillow's time for the same work is measured in the same run by
 * scripts/bench_image_pillow.py (which also makes the test files in /tmp).
 * Wall and process CPU time are both printed: on a shared machine the CPU
 * time is the steadier number. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image_io.h"
#include "seedx.h"

#define DIR "/tmp/seedx_bench_image"
#define NT 5

static double pil_wall[NT], pil_cpu[NT];
static const char *tasks[NT] = {"decode_png_12mp", "decode_jpeg_12mp", "resize_4032x3024_896x448_bicubic",
                                "encode_png_12mp", "anyres_12mp"};

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { double wall, cpu; } tm2;

static void report(int t, tm2 m, const char *extra) {
    printf("%-34s seedx wall %7.3f s cpu %7.3f s | Pillow", tasks[t], m.wall, m.cpu);
    if (pil_wall[t] > 0)
        printf(" wall %7.3f s cpu %7.3f s | cpu ratio %.2fx  %s\n", pil_wall[t], pil_cpu[t], pil_cpu[t] / m.cpu, extra);
    else
        printf(" n/a  %s\n", extra);
}

static tm2 median3(tm2 *t) {
    for (int i = 0; i < 3; i++) /* sort by wall time */
        for (int j = i + 1; j < 3; j++)
            if (t[j].wall < t[i].wall) { tm2 x = t[i]; t[i] = t[j]; t[j] = x; }
    return t[1];
}

int main(void) {
    if (sx_init(0) != 0) return 1;
    printf("threads: %d (Pillow: 1)\n", sx_threads_count());
    FILE *p = popen(".venv/bin/python scripts/bench_image_pillow.py " DIR " 2>&1", "r");
    char line[512];
    while (p && fgets(line, sizeof line, p)) {
        char name[128];
        double w, c;
        if (sscanf(line, "pillow %127s %lf %lf", name, &w, &c) == 3) {
            for (int t = 0; t < NT; t++)
                if (!strcmp(name, tasks[t])) { pil_wall[t] = w; pil_cpu[t] = c; }
        } else {
            fputs(line, stdout);
        }
    }
    if (p) pclose(p);

    sx_image im = {0};
    tm2 t[3];
    double w0, c0;
#define START() (w0 = sx_time(), c0 = cpu_now())
#define STOP(i) (t[i].wall = sx_time() - w0, t[i].cpu = cpu_now() - c0)
    for (int r = 0; r < 3; r++) {
        sx_image_free(&im);
        START();
        if (sx_image_load_rgb(DIR "/bench12mp.png", &im)) {
            fprintf(stderr, "bench_image: %s (needs the reference venv to make the test files)\n", sx_errmsg());
            return 1;
        }
        STOP(r);
    }
    report(0, median3(t), "");
    sx_image jp = {0};
    int jok = 1;
    for (int r = 0; r < 3 && jok; r++) {
        sx_image_free(&jp);
        START();
        if (sx_image_load_rgb(DIR "/bench12mp.jpg", &jp)) {
            printf("decode_jpeg_12mp: %s\n", sx_errmsg());
            jok = 0;
        }
        STOP(r);
    }
    if (jok) report(1, median3(t), "");
    sx_image_free(&jp);
    for (int r = 0; r < 3; r++) {
        sx_image out;
        START();
        if (sx_image_resize(&im, 896, 448, SX_RESIZE_BICUBIC, &out)) return 1;
        STOP(r);
        sx_image_free(&out);
    }
    report(2, median3(t), "");
    {
        uint8_t *b;
        size_t n;
        START();
        if (sx_png_encode(&im, &b, &n)) return 1;
        STOP(0);
        char extra[64];
        snprintf(extra, sizeof extra, "ours %zu bytes", n);
        report(3, t[0], extra);
        free(b);
    }
    for (int r = 0; r < 3; r++) {
        sx_anyres a;
        START();
        if (sx_anyres_preprocess(&im, NULL, &a)) return 1;
        STOP(r);
        sx_anyres_free(&a);
    }
    report(4, median3(t), "(Pillow column: Pillow + torchvision)");
    sx_image_free(&im);
    return 0;
}
