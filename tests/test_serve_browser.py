#!/usr/bin/env python3
"""tests/test_serve_browser.py - the web page of `seedx serve` in a real browser.

Starts ./seedx serve on a random loopback port with the tiny model, drives
Debian's chromium through chromium-driver with selenium (pinned in
tests/requirements-browser.txt; nothing is downloaded at run time: the
browser and the driver are the system's), and checks, as a person would:
the page loads and shows the model, an image uploads, a question gets a
streamed answer (the text grows in steps) equal to the API's answer, a
generated image appears inline (64x64, the API's PNG bytes) with a download
link and a progress bar on the way, grounding shows the image with its boxes,
Stop cancels a running generation on the server, and the browser logs no
errors. A screenshot of each step goes to
$SEEDX_TEST_BUILD/browser/ (default build/browser/).
Run from the repository root: make test-browser."""
import base64
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.request

os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager fetch anything
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

MODEL = "tests/fixtures/seedx_e2e/model"
PHOTO = "tests/data/images/photo/car.jpg"
OUT = pathlib.Path(os.environ.get("SEEDX_TEST_BUILD", "build")) / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")
    sys.stdout.flush()


def start_server(log):
    p = subprocess.Popen(["./seedx", "serve", "-m", MODEL, "--port", "0", "--size", "64x64", "--steps", "4"],
                         stdout=subprocess.PIPE, stderr=log, text=True)
    for line in p.stdout:
        if "listening on " in line:
            return p, line.split("listening on ")[1].split()[0]
    raise RuntimeError("the server did not start (see %s)" % log.name)


def api(url, body):
    req = urllib.request.Request(url + "v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    log = open(OUT / "server.log", "w")
    server, url = start_server(log)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,860"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    wait = WebDriverWait(d, 60)
    photo_url = "data:image/jpeg;base64," + base64.b64encode(pathlib.Path(PHOTO).read_bytes()).decode()
    try:
        # 1. the page: the model's modes and context from /v1/models
        d.get(url)
        wait.until(lambda d: "modes" in d.find_element(By.ID, "info").text)
        check("page loads and shows the model", d.title.startswith("seedx.c") and
              "context 2048 tokens" in d.find_element(By.ID, "info").text, d.find_element(By.ID, "info").text)
        d.save_screenshot(str(OUT / "1-page.png"))

        # 2. upload an image through the file input
        d.find_element(By.ID, "file").send_keys(os.path.abspath(PHOTO))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#attachments img"))
        thumb = d.find_element(By.CSS_SELECTOR, "#attachments img")
        check("image attached", d.execute_script("return arguments[0].naturalWidth", thumb) > 0 and
              thumb.get_attribute("src") == photo_url)
        d.find_element(By.CSS_SELECTOR, "#options summary").click()
        d.find_element(By.ID, "opt-max-tokens").send_keys("40")
        d.save_screenshot(str(OUT / "2-attached.png"))

        # 3. ask: the answer streams in (its text grows in steps) and is the API's answer
        d.execute_script("""
            window.__lens = []; window.__labels = [];
            new MutationObserver(() => {
              const t = document.querySelectorAll('.msg.assistant .text');
              if (t.length) window.__lens.push(t[t.length - 1].textContent.length);
              const p = document.querySelector('.msg.assistant.pending .progress span');
              if (p) window.__labels.push(p.textContent);
            }).observe(document.getElementById('thread'), {subtree: true, childList: true, characterData: true});""")
        question = "What is in this picture?"
        d.find_element(By.ID, "prompt").send_keys(question)
        # the tiny model answers in milliseconds: a slow network (4 kB/s down) lets the page
        # show the events as they arrive instead of in one read
        d.set_network_conditions(offline=False, latency=0, download_throughput=4000, upload_throughput=10**8)
        d.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant.done"))
        d.delete_network_conditions()
        msg = d.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
        shown = d.execute_script("return arguments[0].querySelector('.text').textContent", msg)
        lens = d.execute_script("return window.__lens")
        steps = sorted(set(lens))
        check("answer streamed in steps", "error" not in msg.get_attribute("class") and len(steps) >= 5 and
              steps[-1] == len(shown), f"lengths seen {steps[:12]}..., final {len(shown)}")
        ref = api(url, {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": photo_url}}, {"type": "text", "text": question}]}],
            "mode": "chat", "temperature": 0, "seed": 42, "max_tokens": 40})
        want = re.sub("<[^>]*>", "", ref["choices"][0]["message"]["content"])  # shown without the tags
        check("answer equals the API's", shown == want and len(shown) > 0, f"page {shown!r} api {want!r}")
        user_img = d.find_elements(By.CSS_SELECTOR, ".msg.user img.thumb")
        check("question shows the image", len(user_img) == 1 and
              d.execute_script("return arguments[0].naturalWidth", user_img[0]) == 1200)
        d.save_screenshot(str(OUT / "3-answer.png"))

        # 4. generate: progress bar, then the image inline with a download link
        Select(d.find_element(By.ID, "mode")).select_by_value("generate")
        d.find_element(By.ID, "opt-max-tokens").clear()  # the mode's default (120): room for the image
        d.find_element(By.ID, "opt-force-image").click()
        d.execute_script("window.__labels = []")
        caption = "a red square under a blue sky"
        d.find_element(By.ID, "prompt").send_keys(caption)
        d.find_element(By.ID, "send").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant.done")) == 2)
        imgs = d.find_elements(By.CSS_SELECTOR, ".msg.assistant img.gen")
        labels = d.execute_script("return window.__labels")
        check("generated image inline", len(imgs) == 1 and
              d.execute_script("return arguments[0].naturalWidth", imgs[0]) == 64, f"{len(imgs)} images")
        check("progress bar showed the denoising steps", any(l.startswith("denoise ") and l.endswith("/4")
                                                             for l in labels), f"labels {labels}")
        ref = api(url, {"messages": [{"role": "user", "content": [{"type": "text", "text": caption}]}],
                        "mode": "generate", "force_image": True, "temperature": 0, "seed": 42})
        ref_url = [p for p in ref["choices"][0]["message"]["content"] if p["type"] == "image_url"][0]["image_url"]["url"]
        link = d.find_elements(By.CSS_SELECTOR, ".msg.assistant a.dl")
        check("image is the API's PNG, with a download link", imgs and imgs[0].get_attribute("src") == ref_url and
              link and link[0].get_attribute("download").endswith(".png") and link[0].get_attribute("href") == ref_url)
        d.save_screenshot(str(OUT / "4-generated.png"))

        # 5. ground (the base model's detection prompt): the image with the API's boxes drawn
        Select(d.find_element(By.ID, "mode")).select_by_value("ground")
        Select(d.find_element(By.ID, "opt-template")).select_by_value("seed-x")
        d.find_element(By.ID, "opt-force-image").click()
        d.find_element(By.ID, "opt-max-tokens").send_keys("48")
        d.find_element(By.ID, "file").send_keys(os.path.abspath(PHOTO))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#attachments img"))
        where = "In the background there is a car"
        d.find_element(By.ID, "prompt").send_keys(where)
        d.find_element(By.ID, "send").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant.done")) == 3)
        last = d.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
        g = last.find_elements(By.CSS_SELECTOR, "img.gen")
        ref = api(url, {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": photo_url}}, {"type": "text", "text": where}]}],
            "mode": "ground", "template": "seed-x", "temperature": 0, "seed": 42, "max_tokens": 48})
        msg = ref["choices"][0]["message"]
        drawn = [p for p in msg["content"] if p["type"] == "image_url"][0]["image_url"]["url"]
        boxes = " ".join("[%s]" % ", ".join(map(str, b["box"])) for b in msg["boxes"])
        check("grounding shows the image with the API's boxes", len(g) == 1 and g[0].get_attribute("src") == drawn and
              len(msg["boxes"]) > 0 and f"{len(msg['boxes'])} box(es): {boxes}" in last.text, last.text)
        frames = last.find_elements(By.CSS_SELECTOR, ".pic .box")
        shown = [d.execute_script("const r = arguments[0].getBoundingClientRect(), i = arguments[1].getBoundingClientRect();"
                                  "return [r.left - i.left, r.top - i.top, r.right - i.left, r.bottom - i.top]", f, g[0])
                 for f in frames]
        scale = g[0].size["width"] / 1200
        check("the boxes are drawn over the picture where the API put them", len(frames) == len(msg["boxes"]) and all(
            abs(s - b * scale) < 2 for f, m in zip(shown, msg["boxes"]) for s, b in zip(f, m["box"])), f"{shown}")
        d.save_screenshot(str(OUT / "5-ground.png"))

        # 6. the whole conversation in one picture (README)
        d.set_window_size(1000, 1720)
        d.execute_script("document.getElementById('thread').scrollTop = 0")
        d.save_screenshot(str(OUT / "6-thread.png"))

        # 7. Stop during a long generation: the page says so and the server stops computing
        Select(d.find_element(By.ID, "mode")).select_by_value("generate")
        Select(d.find_element(By.ID, "opt-template")).select_by_value("seed-x-i")
        d.find_element(By.ID, "opt-max-tokens").clear()
        d.find_element(By.ID, "opt-steps").send_keys("1000")
        d.find_element(By.ID, "opt-force-image").click()
        d.find_element(By.ID, "prompt").send_keys("a long one")
        d.find_element(By.ID, "send").click()
        wait.until(lambda d: "denoise" in d.find_element(By.CSS_SELECTOR, ".msg.assistant.pending .progress").text)
        d.find_element(By.ID, "stop").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant.done")) == 4)
        t0, running = time.time(), 1
        while running and time.time() - t0 < 5:
            with urllib.request.urlopen(url + "health", timeout=10) as r:
                running = json.load(r)["running"]
            time.sleep(0.05)
        last = d.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
        check("Stop cancels the running generation", "stopped" in last.text and not running,
              f"{last.text!r}, running {running}")
        d.save_screenshot(str(OUT / "7-stopped.png"))

        severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        check("no errors in the browser console", not severe, severe)
    finally:
        d.quit()
        server.terminate()
        server.wait(timeout=20)
        log.close()
    check("server stopped cleanly", server.returncode == 0, f"exit {server.returncode}")
    print(f"screenshots in {OUT}/")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
