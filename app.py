"""srgan-studio in the browser: bicubic vs SRGAN, a toy GAN training live, and a KS drift check.

Layout and event wiring only: every number, picture and figure comes from `srgan_core` (sr_job,
compare, figures, model_card, playground); here they become widgets. Library errors (ValueError)
become one message for the visitor in `user_errors`, the one place that knows gradio's errors.
`python app.py` serves it (a Hugging Face Space runs the same file); `--help` lists the options.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import tempfile
from pathlib import Path

import gradio as gr
from gradio.components.plot import PlotData

from srgan_core import (anomaly, checks, degrade, figures, interpolate, model_card, playground, sr_job, toygan,
                        toygan_steps, weights)
from srgan_core.upscale import MAX_INPUT_PIXELS, MAX_INPUT_SIDE

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
HUB_DEFAULT = "hf://srgan-studio/srgan-x4/srgan_x4"  # where the bundled weights are published
SCALE = 4
SR_CONCURRENCY = 1  # SR jobs at once, all users together: each holds a model and a 16x larger output
TOY_UPDATES_PER_S, TOY_CONCURRENCY, TOY_MAX_EPOCHS, TOY_MAX_HIDDEN = 4, 2, 100_000, 1024
MAX_KS_N, CURVE_TRIALS = 5_000, 200
CURVE_SIZES = [n for n in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if n <= MAX_KS_N]  # the n slider's range
LABELS = {"srgan_x4": "SRGAN", "srresnet_x4": "SRResNet"}
# results go inside gradio's own cache folder, so they are served as they are, not copied again
# SRGAN_APP_SLOW_S / SRGAN_APP_PREVIEW_S: when a job first says how long it will take, and how often
# rows are shown while it runs (seconds); tests lower them to see the stream with tiny models
studio = sr_job.Studio(Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio") / "srgan-studio",
                       LABELS, SCALE,
                       slow_s=float(os.environ.get("SRGAN_APP_SLOW_S", 2.0)),
                       preview_every_s=float(os.environ.get("SRGAN_APP_PREVIEW_S", 1.5)))
log = logging.getLogger("srgan-studio")
stops = playground.StopSwitches()  # toy trainings by session token


def user_errors(fn, show_at: int | None = None, n_outputs: int = 0):
    """`fn` as a generator event handler whose ValueErrors (the library's "bad input") become one
    message: shown in the page at output `show_at` until the next action, one line in the server
    log, and a gr.Error (a toast, and the error for API clients). Other errors are bugs: traceback."""

    @functools.wraps(fn)
    def run(*args):
        try:
            result = fn(*args)
            yield from (result if hasattr(result, "__next__") else [result])
        except ValueError as exc:
            message = str(exc).replace(str(weights.weights_dir()), "weights/")
            log.warning("%s refused: %s", fn.__name__, message)
            if show_at is not None:
                yield tuple(gr.Markdown(f"**Could not do that:** {message}", elem_classes=["sr-error"])
                            if i == show_at else gr.skip() for i in range(n_outputs))
            raise gr.Error(message, print_exception=False) from None

    return run


def plot(fig: dict | None) -> PlotData | None:
    return None if fig is None else PlotData(type="plotly", plot=json.dumps(fig))


# ============================================================================ super-resolution


def sr_event(job):
    """An SR button: the library's Updates as (status, slider, table, crops, download)."""
    def run(image: dict | None, model: str, *options):
        img, stem = sr_job.open_upload(image)
        for u in job(img, stem, model, *options):
            if u.warning:
                gr.Warning(u.warning)
            yield tuple(gr.skip() if v is None else v for v in (u.status, u.pair, u.table, u.crops, u.download))

    run.__name__ = job.__name__
    run.__doc__ = job.__doc__
    return user_errors(run, show_at=0, n_outputs=5)


# ============================================================================ toy GAN and anomaly check


def train_toygan(target: str, epochs, lr, hidden, seed, session: dict | None):
    """Train the 1-D GAN, streaming {epoch, epochs, d_loss, g_loss, ks_statistic, target, done}
    a few times a second; the page draws the session's latest snapshot on a timer (`toy_view`)."""
    config = playground.toy_config(target, epochs, lr, hidden, seed, TOY_MAX_EPOCHS, TOY_MAX_HIDDEN)
    token, stop = stops.new()
    for status, toy in playground.train_stream(config, stop, TOY_UPDATES_PER_S):
        yield status, {"token": token, "toy": toy}


def toy_view(session: dict | None):
    """(distribution figure, curves figure, status line) of this session's latest snapshot."""
    toy, token = (session or {}).get("toy"), (session or {}).get("token")
    if toy is None:
        return None, None, "Press **Train** to start."
    return (plot(figures.toy_distribution(toy["snapshot"], toy["config"])),
            plot(figures.toy_curves(toy["history"], toy["config"].epochs)), playground.status_line(toy, stops.pressed(token)))


def stop_toygan(session: dict | None):
    stops.press((session or {}).get("token"))
    return gr.Timer(active=False)


# the toy GAN's step mode: ranges a shared link's settings must keep to (the widgets' own), and the
# script that writes the settings into the page's address whenever one changes
TOY_LINK_LIMITS = {"epochs": (100, TOY_MAX_EPOCHS), "lr": (0, 1.0), "hidden": (2, 256), "seed": (0, 2**32 - 1)}
TOY_LINK_JS = """(...values) => {
    const url = new URL(window.location.href);
    %s.forEach((key, i) => url.searchParams.set(key, values[i]));
    window.history.replaceState(window.history.state, "", url);
}""" % json.dumps(list(toygan_steps.LINK_KEYS))
TOY_LINK_TAB_JS = """() => {  // a link with toy settings opens on the Toy GAN tab
    const query = new URLSearchParams(window.location.search);
    if (!%s.some(key => query.has(key))) return;
    const tab = [...document.querySelectorAll("[role=tab]")].find(t => t.textContent.trim() === "Toy GAN");
    if (tab) tab.click();
}""" % json.dumps(list(toygan_steps.LINK_KEYS))


def toy_step(action: str):
    """A step-mode event on this visitor's stepper (a new one whenever a setting changed): "d" one D
    update, "g" one G update, "run" `speed` whole epochs. Returns the distribution and curves plots,
    the caption, {preset, target, d_steps, g_steps, epoch, d_real, d_fake, ks_statistic, d_loss,
    g_loss, caption} and the stepper."""
    def run(preset: str, target: str, lr, hidden, seed, speed, stepper: toygan_steps.Stepper | None):
        stepper = toygan_steps.stepper_for(stepper, preset, target=target, lr=checks.real("lr", lr),
                                           hidden=checks.whole("hidden units", hidden, 1, TOY_MAX_HIDDEN, floats=True),
                                           seed=checks.whole("seed", seed, 0, 2**32 - 1, floats=True))
        if action == "d":
            stepper.step_d()
        elif action == "g":
            stepper.step_g()
        else:
            stepper.run(checks.whole("speed", speed, 1, toygan_steps.SPEEDS[-1], floats=True))
        frame = stepper.frame()
        return (plot(figures.toy_distribution(frame, stepper.config, stepper.title())),
                plot(figures.toy_curves(stepper.history, max(1, stepper.history["epoch"][-1]))), stepper.caption,
                stepper.status(), stepper)

    run.__name__ = f"step_{action}"
    return user_errors(run, show_at=2, n_outputs=5)


def choose_preset(name: str):
    """A preset fills in the target (and the bundled generator's width) and says what to watch for."""
    preset = toygan_steps.PRESETS.get(name) or toygan_steps.PRESETS["normal"]
    hidden = toygan.load_toy_generator(None).config.hidden if preset.from_trained else gr.skip()
    return preset.target, hidden, f"**{preset.label}.** {preset.what} Press **Step D**."


def play_pause(label: str):
    playing = label.startswith("⏸")
    return gr.Timer(active=not playing), gr.Button("▶ Play" if playing else "⏸ Pause")


def apply_link(request: gr.Request):
    """Settings from the page's address (?preset=skewed&seed=3&speed=100): a shared link sets up the Toy
    GAN tab as it was; each bad value is named under the step buttons and left as it is on the page."""
    values, problems = toygan_steps.settings_from_link(dict(request.query_params), TOY_LINK_LIMITS)
    preset = toygan_steps.PRESETS.get(values.get("preset", ""))
    lines = [f"**{preset.label}.** {preset.what} Press **Step D**."] if preset else []
    lines += [f"Setting in the link ignored: {problem}" for problem in problems]
    return (*(values.get(key, gr.skip()) for key in toygan_steps.LINK_KEYS), "\n\n".join(lines) if lines else gr.skip())


def ks_check(source: str, a, b, fraction, n, seed, session: dict | None):
    """n draws of the chosen noise through the toy generator, KS-tested against its target.
    Returns input and output histograms, QQ plot, a coloured verdict, and {statistic, p_value,
    alpha, flagged, verdict, n, source, target, generator}."""
    n, seed = checks.whole("n", n, 2, MAX_KS_N, floats=True), checks.whole("seed", seed, 0, 2**32 - 1, floats=True)
    generator, which = playground.toy_generator((session or {}).get("toy"))
    r = playground.ks_report(generator, playground.noise(source, a, b, fraction), n, seed, which)
    return (plot(r.inputs), plot(r.outputs), plot(r.qq),
            gr.Markdown(r.line, elem_classes=["verdict", "flagged" if r.flagged else "passes"]), r.result)


def detection_curve(source: str, a, b, fraction, seed, session: dict | None):
    """How often the check fires as n grows over the n slider's range, on uniform input (false
    alarms) and on the chosen input (power): a figure, a plain-words note on the false alarms,
    and {sizes, trials, alpha, false_alarm, power, source, generator}."""
    generator, which = playground.toy_generator((session or {}).get("toy"))
    fig, note, data = playground.detection_report(generator, playground.noise(source, a, b, fraction), CURVE_SIZES, CURVE_TRIALS,
                                                  checks.whole("seed", seed, 0, 2**32 - 1, floats=True), which)
    return plot(fig), note, data


# ============================================================================ layout

INTRO = """# srgan-studio
Super-resolution with SRGAN ([Ledig et al., 2017](https://arxiv.org/abs/1609.04802)), a one-dimensional GAN you can
watch learn, and a drift detector built from it. Everything runs on the CPU."""
SR_HELP = f"""**Upscale ×4** makes your image four times larger. **Simulate ×4** shrinks it four times first, upscales it
back and scores each method against the original. Inputs up to {MAX_INPUT_SIDE:,} px a side and {MAX_INPUT_PIXELS / 1e6:.1f} MP."""
CSS = """
#sr-status { min-height: 4.5em; } #toy-line, #ks-line { min-height: 2.5em; }
.sr-error { color: #b71c1c; background: #ffebee; border-radius: 6px; padding: 4px 8px; }
#sr-status .wrap:has(.error) { display: none; }  /* the message itself is shown: no badge over it */
.verdict.flagged h3 { color: #c62828; } .verdict.passes h3 { color: #2e7d32; }
#card-text pre, #card-text code { white-space: pre-wrap; overflow-wrap: anywhere; }
#sr-crops img { object-fit: contain; }
@media (max-width: 640px) { .tab-container button, [role=tablist] button { padding: 4px 6px; font-size: 14px; } }
"""


def build_app() -> gr.Blocks:
    with gr.Blocks(title="srgan-studio", delete_cache=(1800, 3600)) as demo:
        session = gr.State(None)  # per browser tab / client: this session's trained toy generator
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Upscale", id="sr"):
                notice = gr.Markdown(elem_id="weights-notice")
                gr.Markdown(SR_HELP)
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        image_in = gr.Image(label="Input image", type="filepath", image_mode=None, height=260,
                                            sources=["upload", "clipboard"], elem_id="sr-input", render=False)
                        examples = gr.Examples([[str(p)] for p in sorted(EXAMPLES.glob("*.png"))], inputs=[image_in],
                                               label="Try an example (public domain / CC0 photos): a click runs Upscale")
                        image_in.render()
                        with gr.Row():
                            upscale_btn = gr.Button("Upscale ×4", variant="primary", elem_id="upscale-btn")
                            simulate_btn = gr.Button("Simulate ×4", variant="secondary", elem_id="simulate-btn")
                        with gr.Accordion("Model, GAN strength, how Simulate shrinks", open=False, elem_id="sr-options"):
                            model = gr.Dropdown([], label="Model", allow_custom_value=True,
                                                info="bundled weights, or a Hub reference hf://owner/repo/name")
                            strength = gr.Slider(0, 1, value=1, step=0.05, label="GAN strength", elem_id="sr-strength",
                                                 info="0: SRResNet's smooth, faithful result · 1: SRGAN's sharper texture")
                            shrink = gr.Radio([(v, k) for k, v in degrade.PRESET_LABELS.items()], value="bicubic",
                                              label="Simulate shrinks with", elem_id="sr-preset")
                    with gr.Column(scale=3, min_width=300):
                        status = gr.Markdown("Pick an example, or upload an image.", elem_id="sr-status")
                        slider = gr.ImageSlider(label="Bicubic ↔ model", type="filepath", max_height=560,
                                                show_label=False, elem_id="sr-slider")
                        crops = gr.Image(type="filepath", show_label=False, format="png", elem_id="sr-crops",
                                         buttons=["download", "fullscreen"])
                        scores = gr.Dataframe(headers=["method", "time (s)"], interactive=False, show_label=False,
                                              elem_id="sr-scores")
                        download = gr.File(label="The model's output (PNG)", height=80)
                sr_out = [status, slider, scores, crops, download]
                sr_io = dict(outputs=sr_out, preprocess=False, show_progress_on=[status], concurrency_limit=SR_CONCURRENCY,
                             concurrency_id="sr")
                run_up, run_sim, up_in = sr_event(studio.upscale), sr_event(studio.simulate), [image_in, model, strength]
                upscale_btn.click(run_up, up_in, api_name="upscale", **sr_io)
                simulate_btn.click(run_sim, up_in + [shrink], api_name="simulate", **sr_io)
                examples.load_input_event.then(run_up, up_in, api_visibility="private", **sr_io)
                model.change(lambda m: gr.Slider(visible=m == interpolate.INTERPOLATION_PAIR[1]), model, strength,
                             queue=False, api_visibility="private", show_progress="hidden")
                image_in.change(lambda: gr.Markdown("Ready: press **Upscale ×4** or **Simulate ×4**.", elem_classes=[]),
                                None, status, queue=False, api_visibility="private", show_progress="hidden")

            with gr.Tab("Toy GAN", id="toy"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=260):
                        with gr.Row():
                            train_btn = gr.Button("Train", variant="primary", elem_id="train-btn")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
                        toy_line = gr.Markdown("Press **Train** to start.", elem_id="toy-line")
                        with gr.Row():  # the step mode: one update at a time, or played at a chosen speed
                            step_d_btn = gr.Button("Step D", size="sm", elem_id="step-d-btn")
                            step_g_btn = gr.Button("Step G", size="sm", elem_id="step-g-btn")
                            play_btn = gr.Button("▶ Play", size="sm", elem_id="play-btn")
                        step_caption = gr.Markdown("Or go one update at a time: **Step D**, then **Step G** (steps 1–4 "
                                                   "below the plots).", elem_id="toy-caption")
                        speed = gr.Radio(list(toygan_steps.SPEEDS), value=10, label="Play speed: epochs per frame",
                                         elem_id="toy-speed")
                        preset = gr.Dropdown([(p.label, key) for key, p in toygan_steps.PRESETS.items()], value="normal",
                                             label="Preset", elem_id="toy-preset")
                        target = gr.Radio(list(toygan.TARGETS), value="normal", label="Real data",
                                          info=" · ".join(f"{t}: {toygan.describe_target(toygan.ToyGANConfig(target=t))}"
                                                          for t in toygan.TARGETS), elem_id="toy-target")
                        epochs = gr.Slider(100, TOY_MAX_EPOCHS, value=20_000, step=100, label="Epochs",
                                           info="one epoch = one update of D, then one of G", elem_id="toy-epochs")
                        lr = gr.Number(1e-3, label="Learning rate (Adam)", minimum=1e-6, maximum=1.0, elem_id="toy-lr")
                        hidden = gr.Slider(2, 256, value=50, step=1, label="Generator hidden units", elem_id="toy-hidden")
                        seed = gr.Number(1, label="Seed", precision=0, minimum=0, info="seed 1 matches the bundled generator",
                                         elem_id="toy-seed")
                        toy_status = gr.JSON(visible=False)
                        step_status = gr.JSON(visible=False)
                        stepper = gr.State(None)  # per browser tab / client: this visitor's step-mode GAN
                    with gr.Column(scale=3):
                        dist_plot = gr.Plot(show_label=False, elem_id="toy-dist")
                        curves_plot = gr.Plot(show_label=False, elem_id="toy-curves")
                        gr.Markdown(toygan_steps.explanation(toygan.ToyGANConfig()), elem_id="toy-steps-help")
                gr.Markdown(playground.TOY_HELP)
                # the page pulls the plots on a timer: a tick is skipped while the previous one is pending,
                # so a slow browser never falls behind a backlog of frames
                plot_timer = gr.Timer(1 / TOY_UPDATES_PER_S, active=False)
                view = [dist_plot, curves_plot, toy_line]
                plot_timer.tick(toy_view, session, view, api_name="toy_plots", show_progress="hidden", concurrency_limit=None)
                train_event = train_btn.click(lambda: gr.Timer(active=True), None, plot_timer, queue=False,
                                              api_visibility="private").then(
                    user_errors(train_toygan), [target, epochs, lr, hidden, seed, session], [toy_status, session],
                    api_name="train_toygan", concurrency_limit=TOY_CONCURRENCY, concurrency_id="toy",
                    show_progress="hidden", preprocess=False)
                train_event.then(lambda: gr.Timer(active=False), None, plot_timer, api_visibility="private").then(
                    toy_view, session, view, api_visibility="private", show_progress="hidden")
                stop_btn.click(stop_toygan, session, plot_timer, cancels=[train_event], api_visibility="private",
                               queue=False).then(toy_view, session, view, api_visibility="private", show_progress="hidden")
                step_io = dict(inputs=[preset, target, lr, hidden, seed, speed, stepper],
                               outputs=[dist_plot, curves_plot, step_caption, step_status, stepper], preprocess=False,
                               show_progress="hidden")
                step_d_btn.click(toy_step("d"), api_name="step_d", **step_io)
                step_g_btn.click(toy_step("g"), api_name="step_g", **step_io)
                step_timer = gr.Timer(1 / TOY_UPDATES_PER_S, active=False)  # Play: `speed` epochs a tick
                step_timer.tick(toy_step("run"), api_name="step_run", **step_io)
                play_btn.click(play_pause, play_btn, [step_timer, play_btn], queue=False, api_visibility="private")
                preset.input(user_errors(choose_preset, show_at=2, n_outputs=3), preset, [target, hidden, step_caption],
                             queue=False, api_visibility="private")
                link_fields = [preset, target, epochs, lr, hidden, seed, speed]
                gr.on([f.change for f in link_fields], None, link_fields, None, js=TOY_LINK_JS, queue=False,
                      api_visibility="private")

            with gr.Tab("Anomaly", id="anomaly"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=260):
                        with gr.Row():
                            ks_btn = gr.Button("Run KS check", variant="primary", elem_id="ks-btn")
                            curve_btn = gr.Button("Detection curve", elem_id="curve-btn")
                        ks_line = gr.Markdown(elem_id="ks-line")
                        source = gr.Radio(list(anomaly.NOISE_KINDS), value="beta", label="Input noise",
                                          info="uniform: what the generator expects · drift: uniform with a share of Beta")
                        a = gr.Slider(0.1, 10, value=1, step=0.1, label="Beta a")
                        b = gr.Slider(0.1, 10, value=5, step=0.1, label="Beta b")
                        fraction = gr.Slider(0, 1, value=0.2, step=0.05, label="Drift: share of Beta values", visible=False)
                        n = gr.Slider(10, MAX_KS_N, value=100, step=10, label="n: values per check")
                        ks_seed = gr.Number(0, label="Seed", precision=0, minimum=0)
                        ks_result = gr.JSON(visible=False, elem_id="ks-result")
                    with gr.Column(scale=3):
                        with gr.Row():
                            in_plot = gr.Plot(show_label=False, elem_id="ks-inputs")
                            out_plot = gr.Plot(show_label=False, elem_id="ks-outputs")
                        with gr.Row():
                            qq_plot = gr.Plot(show_label=False, elem_id="ks-qq")
                            with gr.Column():
                                curve_plot = gr.Plot(show_label=False, elem_id="ks-curve")
                                curve_note = gr.Markdown(elem_id="ks-curve-note")
                        curve_data = gr.JSON(visible=False)
                gr.Markdown(playground.KS_HELP)
                source.change(lambda s: (gr.Slider(visible=s in ("beta", "drift")), gr.Slider(visible=s in ("beta", "drift")),
                                         gr.Slider(visible=s == "drift")),
                              source, [a, b, fraction], api_visibility="private", queue=False)
                ks_btn.click(user_errors(ks_check), [source, a, b, fraction, n, ks_seed, session],
                             [in_plot, out_plot, qq_plot, ks_line, ks_result], api_name="ks_check", preprocess=False,
                             show_progress_on=[ks_line])
                curve_btn.click(user_errors(detection_curve), [source, a, b, fraction, ks_seed, session],
                                [curve_plot, curve_note, curve_data], api_name="detection_curve", preprocess=False,
                                show_progress_on=[curve_plot])

            with gr.Tab("Model card", id="card"):
                card_table = gr.Dataframe(interactive=False, elem_id="card-table", wrap=True,
                                          label="Scores on standard test photos: PSNR / SSIM as in the SRGAN paper (higher is "
                                          "closer to the original); detail: the output's sharpness over the original's")
                card_plot = gr.Plot(show_label=False, visible=False, elem_id="card-plot")
                card_text = gr.Markdown(elem_id="card-text")

        def refresh():  # weights may be added while the server runs: every page load reads the folder again
            choices, card = studio.choices(HUB_DEFAULT), model_card.read_card(studio.bundled(), studio.label)
            fig = figures.validation_curves(card.curves)
            table = gr.Dataframe({"headers": card.headers, "data": card.rows}, column_widths=sr_job.column_widths(len(card.headers)))
            return (studio.notice(), gr.Dropdown(choices=choices, value=choices[0][1]), card.markdown, table,
                    gr.Plot(value=plot(fig), visible=fig is not None))

        demo.load(refresh, outputs=[notice, model, card_text, card_table, card_plot], api_visibility="private")
        # outside the queue: a link's settings are in place at once, and the page's other load events wait for nothing
        demo.load(apply_link, outputs=[*link_fields, step_caption], queue=False, show_progress="hidden",
                  api_visibility="private")
        demo.load(None, js=TOY_LINK_TAB_JS)
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve the srgan-studio web app. Host and port come from GRADIO_SERVER_NAME and "
        "GRADIO_SERVER_PORT when set, else 127.0.0.1:7860. Weights are read from weights/ (or SRGAN_WEIGHTS_DIR).")
    parser.add_argument("--host", default=None, help="interface to listen on, e.g. 0.0.0.0 for all")
    parser.add_argument("--port", type=int, default=None, help="port to listen on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    demo = build_app()
    demo.queue(max_size=64, default_concurrency_limit=2)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size="50mb", theme=gr.themes.Soft(), css=CSS)


if __name__ == "__main__":
    main()
