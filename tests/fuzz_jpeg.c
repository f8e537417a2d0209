/* tests/fuzz_jpeg.c - libFuzzer harness for the JPEG decoder (jpeg.c).
 * Any input must decode or fail with an error message naming the input;
 * never crash, leak or trip ASan/UBSan. Inputs whose header announces more
 * than 4 MP are only header-parsed (keeps the fuzzer fast and within its
 * memory limit; the limit checks themselves are covered by test_jpeg). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image_io.h"
#include "seedx.h"

int sx_jpeg_decode(const uint8_t *buf, size_t n, const char *name, sx_image *out,
                   int *pil_channels);
int sx_jpeg_info(const uint8_t *buf, size_t n, const char *name, int *w, int *h,
                 int *channels);
int sx_jpeg_exif_orientation(const uint8_t *buf, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int w = 0, h = 0, c = 0;
    int o = sx_jpeg_exif_orientation(data, size);
    if (o < 1 || o > 8) abort();
    if (sx_jpeg_info(data, size, "fuzz.jpg", &w, &h, &c) == 0 && (int64_t)w * h > 4 * 1024 * 1024)
        return 0;
    sx_image im;
    int pc = 0;
    if (sx_jpeg_decode(data, size, "fuzz.jpg", &im, &pc) == 0) {
        if (im.w <= 0 || im.h <= 0 || !im.data || pc != im.channels) abort();
        if (im.channels != 1 && im.channels != 3 && im.channels != 4) abort();
        volatile uint8_t sink = im.data[(size_t)im.w * im.h * im.channels - 1];
        (void)sink;
        free(im.data);
    } else {
        if (!strstr(sx_errmsg(), "fuzz.jpg")) abort();
        if (im.data) abort();
    }
    return 0;
}
