/* image_io.h - images in and out (our own PNG/JPEG/PPM code, no libraries),
 * Pillow-exact conversion and resizing, and SEED-X any-resolution
 * preprocessing. */
#ifndef SEEDX_IMAGE_IO_H
#define SEEDX_IMAGE_IO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An 8-bit image, interleaved, row-major. channels: 1 (L), 2 (LA), 3 (RGB),
 * 4 (RGBA or, for JPEG, CMYK as Pillow stores it). */
typedef struct sx_image {
    int w, h, channels;
    uint8_t *data; /* w*h*channels bytes, owned (free with sx_image_free) */
} sx_image;

void sx_image_free(sx_image *im);

/* Decoders: `name` is used in error messages (usually the file path).
 * Output is converted to 8-bit RGB exactly as Pillow's .convert('RGB').
 * Limits: at most 16384 px a side and 256 MP, else an error. */
int sx_image_decode_rgb(const uint8_t *buf, size_t n, const char *name, sx_image *out);
int sx_image_load_rgb(const char *path, sx_image *out);

/* Writers (write to a temporary name and rename: no partial files). */
int sx_image_save(const char *path, const sx_image *im); /* by extension: .png .ppm .pgm */
/* What sx_image_save will need, checked before any work: a known extension
 * and a writable place (sx_file_check_writable). */
int sx_image_check_output(const char *path);
int sx_png_encode(const sx_image *im, uint8_t **out, size_t *n);

/* Pillow Image.resize on 8-bit RGB, bit-exact (Resample.c: fixed-point
 * two-pass, horizontal first, a pass skipped when that side is unchanged;
 * same size returns a copy). 1/2/4-channel images are resampled channel by
 * channel like Pillow's "L" (no RGBA premultiplication). */
enum { SX_RESIZE_BILINEAR = 2, SX_RESIZE_BICUBIC = 3 };
int sx_image_resize(const sx_image *src, int w, int h, int filter, sx_image *out);

/* cv2.rectangle(img, (x1, y1), (x2, y2), rgb, thickness=2) of OpenCV 4 with
 * its default LINE_8, pixel for pixel: how the official grounding
 * visualisation draws boxes (green, (0, 255, 0)). Corners may lie outside
 * the image; what falls outside is clipped. 3-channel images only (returns
 * -1 otherwise). */
int sx_image_draw_box(sx_image *im, int x1, int y1, int x2, int y2, const uint8_t rgb[3]);

/* ---- native (pre-conversion) images ------------------------------------
 * A decoder's output in the mode Pillow 9.4 would open the file in, before
 * .convert('RGB'): "1" (bytes 0/255), "L", "LA", "P" (indices + a 256-entry
 * palette that starts as Pillow's grey ramp and is overwritten by PLTE), "I"
 * (16-bit grey, stored as native uint16), "RGB", "RGBA" (16-bit sources
 * reduced to the high byte as Pillow's unpackers do), "CMYK" (as Pillow
 * stores it: inverted Adobe CMYK). */
typedef enum {
    SX_MODE_1, SX_MODE_L, SX_MODE_LA, SX_MODE_P, SX_MODE_I, SX_MODE_RGB, SX_MODE_RGBA, SX_MODE_CMYK
} sx_mode;

typedef struct sx_native_image {
    int w, h;
    sx_mode mode;
    int bpp;              /* bytes per pixel in data: 1,1,2,1,2,3,4,4 */
    uint8_t *data;        /* w*h*bpp bytes, owned */
    uint8_t palette[768]; /* P mode only: RGB triples */
} sx_native_image;

void sx_native_free(sx_native_image *im);
const char *sx_mode_name(sx_mode m);
/* Pillow's Image.convert('RGB') for every mode above. */
int sx_native_to_rgb(const sx_native_image *src, sx_image *out);

/* PNG (png.c). sx_png_decode gives the Pillow-mode pixels; every chunk CRC
 * and the zlib Adler-32 are checked. */
int sx_png_decode(const uint8_t *buf, size_t n, const char *name, sx_native_image *out);
/* 1..4 channel 8-bit images (L, LA, RGB, RGBA); adaptive filters + deflate. */
int sx_png_encode_level(const sx_image *im, int level, uint8_t **out, size_t *n);

/* zlib format (RFC 1950/1951), our own code. sx_zlib_decompress inflates
 * into exactly out_n bytes (error if the stream is longer, shorter, corrupt or
 * its Adler-32 is wrong). sx_zlib_compress: level 0 (stored) .. 9. */
uint32_t sx_crc32(uint32_t crc, const uint8_t *p, size_t n);
uint32_t sx_adler32(uint32_t adler, const uint8_t *p, size_t n);
int sx_zlib_decompress(const uint8_t *in, size_t n, uint8_t *out, size_t out_n, const char *name);
int sx_zlib_compress(const uint8_t *in, size_t n, int level, uint8_t **out, size_t *out_n);

/* JPEG (jpeg.c, another component): pixels in Pillow's native JPEG mode,
 * channels 1 (L), 3 (RGB) or 4 (CMYK as Pillow stores it). */
int sx_jpeg_decode(const uint8_t *buf, size_t n, const char *name, sx_image *out,
                   int *pil_mode_channels);
/* Header only: size and Pillow-mode channel count (jpeg.c). */
int sx_jpeg_info(const uint8_t *buf, size_t n, const char *name, int *w, int *h, int *channels);
/* EXIF orientation of a JPEG: 1..8, 1 if absent or invalid (jpeg.c). */
int sx_jpeg_exif_orientation(const uint8_t *buf, size_t n);

/* ---- general entry points (image_io.c) ---- */
/* Decodes PNG/JPEG/PPM/PGM (by magic bytes, not by extension) to the
 * native mode; `format` (may be NULL) receives "PNG", "JPEG" or "PPM". */
int sx_image_decode_native(const uint8_t *buf, size_t n, const char *name, sx_native_image *out,
                           const char **format);
int sx_read_file(const char *path, uint8_t **buf, size_t *n);
/* Writes buf to path through path.tmpPID + rename. */
int sx_write_file_atomic(const char *path, const uint8_t *buf, size_t n);
/* Checks, before any work, that path can be written the way
 * sx_write_file_atomic will: not a directory, and its temporary name can be
 * created in that folder (created and removed again). */
int sx_file_check_writable(const char *path);
/* PPM (P6) / PGM (P5) writer for 3 / 1 channel images. */
int sx_ppm_encode(const sx_image *im, uint8_t **out, size_t *n);
/* Deep copy; crop (x,y,w,h must lie inside src). */
int sx_image_copy(const sx_image *src, sx_image *out);
int sx_image_crop(const sx_image *src, int x, int y, int w, int h, sx_image *out);

/* ---- SEED-X any-resolution preprocessing (spec section 5) ---- */
#define SX_ANYRES_BASE 448
#define SX_ANYRES_MAX_GRIDS 16
/* The official candidate list: "1x1,1x2,1x3,2x1,3x1,1x4,4x1,2x2" (AxB = A*448
 * wide, B*448 high); the editing script uses "1x1". */
#define SX_ANYRES_DEFAULT_GRIDS "1x1,1x2,1x3,2x1,3x1,1x4,4x1,2x2"

/* Parses "AxB,AxB,..." into (width,height) pixel pairs. */
int sx_anyres_parse_grids(const char *grids, int (*res)[2], int *n);
/* select_best_resolution (rule A), select_best_resolution_v2 (rule B) and
 * their combination (the smaller area wins, equal area -> rule A). Each
 * returns the index into res. */
int sx_anyres_rule_a(int w, int h, const int (*res)[2], int n);
int sx_anyres_rule_b(int w, int h, const int (*res)[2], int n);
int sx_anyres_select(int w, int h, const int (*res)[2], int n);

typedef struct sx_anyres {
    int grid_w, grid_h; /* tiles across / down */
    int n;              /* grid_w*grid_h + 1 (global thumbnail last) */
    sx_image *tiles;    /* n RGB 448x448 images (tiles row-major, thumbnail last) */
    float *pixels;      /* [n,3,448,448] ToTensor + CLIP Normalize */
    float *pos;         /* [n,2] (x,y) = ((c+0.5)/gw, (r+0.5)/gh), thumbnail (0.5,0.5) */
} sx_anyres;
/* grids NULL -> SX_ANYRES_DEFAULT_GRIDS. */
int sx_anyres_preprocess(const sx_image *im, const char *grids, sx_anyres *out);
/* keep_ratio != 0: resize_and_pad_image(keep_ratio=True) - aspect kept
 * (the short side ceil'ed), centred on black; the official scripts use 0. */
int sx_anyres_preprocess_ex(const sx_image *im, const char *grids, int keep_ratio, sx_anyres *out);
void sx_anyres_free(sx_anyres *a);

/* CLIP transform of the reconstruction path: torchvision Resize((448,448))
 * (Pillow BILINEAR; a no-op copy at 448x448), ToTensor, Normalize with the
 * CLIP mean/std -> out [3,448,448]. */
int sx_clip_preprocess_448(const sx_image *im, float *out);
/* ToTensor + CLIP Normalize of an RGB image -> [3,h,w]. */
int sx_clip_normalize(const sx_image *im, float *out);
/* Editing/reconstruction condition image: Pillow resize to 1024x1024
 * (BICUBIC) then diffusers VaeImageProcessor x/255*2-1 -> out [3,1024,1024]. */
int sx_vae_preprocess_1024(const sx_image *im, float *out);

/* EXIF orientation (tag 0x0112 from a JPEG APP1 Exif segment or a PNG eXIf
 * chunk): 1..8, 1 when absent. Not applied by default (SEED-X does not apply
 * it); sx_image_exif_transpose is Pillow's ImageOps.exif_transpose. */
int sx_exif_orientation(const uint8_t *buf, size_t n);
int sx_image_exif_transpose(const sx_image *im, int orientation, sx_image *out);
/* sx_image_load_rgb, then the EXIF transpose when exif_rotate != 0. */
int sx_image_load_rgb_ex(const char *path, int exif_rotate, sx_image *out);

#ifdef __cplusplus
}
#endif
#endif
