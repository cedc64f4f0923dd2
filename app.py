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

from srgan_core import anomaly, degrade, figures, interpolate, model_card, playground, sr_job, toygan, toygan_steps, weights

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
HUB_DEFAULT = "hf://srgan-studio/srgan-x4/srgan_x4"  # where the bundled weights are published
SCALE = 4
SR_CONCURRENCY = 1  # SR jobs at once, all users together: each holds a model and a 16x larger output
TOY_UPDATES_PER_S, TOY_CONCURRENCY, TOY_MAX_EPOCHS, TOY_MAX_HIDDEN = 4, 2, 100_000, 1024
MAX_KS_N, CURVE_TRIALS = 5_000, 200
CURVE_SIZES = [n for n in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if n <= MAX_KS_N]  # the n slider's range
LABELS = {"real_x4": "Real-photo SR", "srgan_x4": "SRGAN", "srresnet_x4": "SRResNet"}  # menu order: the default first
# results go in gradio's own cache folder (served as they are, not copied again). SRGAN_APP_SLOW_S, SRGAN_APP_PREVIEW_S:
# when a job first says how long it takes, and how often rows are shown (s); tests lower them for tiny models
studio = sr_job.Studio(Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio") / "srgan-studio",
                       LABELS, SCALE, slow_s=float(os.environ.get("SRGAN_APP_SLOW_S", 2.0)),
                       preview_every_s=float(os.environ.get("SRGAN_APP_PREVIEW_S", 1.5)))
toys = playground.ToyTrainings(TOY_MAX_EPOCHS, TOY_MAX_HIDDEN, TOY_UPDATES_PER_S)  # Train, Stop, plots per session
steps = playground.StepMode(TOY_MAX_HIDDEN)
drift = playground.DriftChecks(MAX_KS_N, CURVE_SIZES, CURVE_TRIALS)
log = logging.getLogger("srgan-studio")


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


def plots(fn, *at: int):
    """`fn` with the figures it returns at positions `at` (plotly dicts from srgan_core) made values
    for gr.Plot; its name and docstring stay, for the API page."""
    @functools.wraps(fn)
    def run(*args):
        return tuple(plot(v) if i in at else v for i, v in enumerate(fn(*args)))
    return run


def sr_event(job):
    """An SR button: the library's Updates as (status, slider, table, crops, download)."""
    def run(image: dict | None, model: str, *options):
        img, stem = sr_job.open_upload(image)
        for u in job(img, stem, model, *options):
            if u.warning:
                gr.Warning(u.warning)
            yield tuple(gr.skip() if v is None else v for v in (u.status, u.pair, u.table, u.crops, u.download))

    run.__name__, run.__doc__ = job.__name__, job.__doc__  # not functools.wraps: gradio must see run's parameters
    return user_errors(run, show_at=0, n_outputs=5)


def stop_toygan(session: dict | None):
    toys.stop(session)
    return gr.Timer(active=False)


def play_pause(label: str):
    playing = label.startswith("⏸")
    return gr.Timer(active=not playing), gr.Button("▶ Play" if playing else "⏸ Pause")


# the ranges a shared link's toy settings must keep to: the widgets' own
TOY_LINK_LIMITS = {"epochs": (100, TOY_MAX_EPOCHS), "lr": (0, 1.0), "hidden": (2, 256), "seed": (0, 2**32 - 1)}


def apply_link(request: gr.Request):
    """A shared link's settings (?preset=skewed&seed=3&speed=100) set up the Toy GAN tab; each bad
    value is named under the step buttons and left as it is on the page."""
    values, caption = playground.link_settings(dict(request.query_params), TOY_LINK_LIMITS)
    return (*(values.get(key, gr.skip()) for key in toygan_steps.LINK_KEYS), gr.skip() if caption is None else caption)


def ks_check(source: str, a, b, fraction, n, seed, session: dict | None):
    """n draws of the chosen noise through the toy generator, KS-tested against its target.
    Returns input and output histograms, QQ plot, a coloured verdict, and {statistic, p_value,
    alpha, flagged, verdict, n, source, target, generator}."""
    r = drift.ks(source, a, b, fraction, n, seed, session)
    return (plot(r.inputs), plot(r.outputs), plot(r.qq),
            gr.Markdown(r.line, elem_classes=["verdict", "flagged" if r.flagged else "passes"]), r.result)


def build_app() -> gr.Blocks:
    with gr.Blocks(title="srgan-studio", delete_cache=(1800, 3600)) as demo:
        session = gr.State(None)  # per browser tab / client: this session's trained toy generator
        gr.Markdown("# srgan-studio\nSuper-resolution with SRGAN ([Ledig et al., 2017](https://arxiv.org/abs/1609.04802)), a "
                    "one-dimensional GAN you can watch learn, and a drift detector built from it. Everything runs on the CPU.")
        with gr.Tabs():
            with gr.Tab("Upscale", id="sr"):
                notice = gr.Markdown(elem_id="weights-notice")
                gr.Markdown(sr_job.HELP)
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
                            # the menu is filled in now, not on load: an example clicked at once needs a model
                            choices = studio.choices(HUB_DEFAULT)
                            model = gr.Dropdown(choices, value=choices[0][1], label="Model", allow_custom_value=True,
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
                sr_io = dict(outputs=[status, slider, scores, crops, download], preprocess=False, show_progress_on=[status],
                             concurrency_limit=SR_CONCURRENCY, concurrency_id="sr")
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
                                          info=playground.TARGETS_HELP, elem_id="toy-target")
                        epochs = gr.Slider(100, TOY_MAX_EPOCHS, value=20_000, step=100, label="Epochs",
                                           info="one epoch = one update of D, then one of G", elem_id="toy-epochs")
                        lr = gr.Number(1e-3, label="Learning rate (Adam)", minimum=1e-6, maximum=1.0, elem_id="toy-lr")
                        hidden = gr.Slider(2, 256, value=50, step=1, label="Generator hidden units", elem_id="toy-hidden")
                        seed = gr.Number(1, label="Seed", precision=0, minimum=0, info="seed 1 matches the bundled generator",
                                         elem_id="toy-seed")
                        toy_status, step_status = gr.JSON(visible=False), gr.JSON(visible=False)
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
                toy_view = plots(toys.view, 0, 1)
                plot_timer.tick(toy_view, session, view, api_name="toy_plots", show_progress="hidden", concurrency_limit=None)
                train_event = train_btn.click(lambda: gr.Timer(active=True), None, plot_timer, queue=False,
                                              api_visibility="private").then(
                    user_errors(toys.train), [target, epochs, lr, hidden, seed, session], [toy_status, session],
                    api_name="train_toygan", concurrency_limit=TOY_CONCURRENCY, concurrency_id="toy",
                    show_progress="hidden", preprocess=False)
                train_event.then(lambda: gr.Timer(active=False), None, plot_timer, api_visibility="private").then(
                    toy_view, session, view, api_visibility="private", show_progress="hidden")
                stop_btn.click(stop_toygan, session, plot_timer, cancels=[train_event], api_visibility="private",
                               queue=False).then(toy_view, session, view, api_visibility="private", show_progress="hidden")
                step_io = dict(inputs=[preset, target, lr, hidden, seed, speed, stepper],
                               outputs=[dist_plot, curves_plot, step_caption, step_status, stepper], preprocess=False,
                               show_progress="hidden")
                step_d_btn.click(user_errors(plots(steps.step_d, 0, 1), show_at=2, n_outputs=5), api_name="step_d", **step_io)
                step_g_btn.click(user_errors(plots(steps.step_g, 0, 1), show_at=2, n_outputs=5), api_name="step_g", **step_io)
                step_timer = gr.Timer(1 / TOY_UPDATES_PER_S, active=False)  # Play: `speed` epochs a tick
                step_timer.tick(user_errors(plots(steps.step_run, 0, 1), show_at=2, n_outputs=5), api_name="step_run", **step_io)
                play_btn.click(play_pause, play_btn, [step_timer, play_btn], queue=False, api_visibility="private")
                preset.input(user_errors(playground.choose_preset, show_at=2, n_outputs=3), [preset, hidden],
                             [target, hidden, step_caption], queue=False, api_visibility="private")
                link_fields = [preset, target, epochs, lr, hidden, seed, speed]
                gr.on([f.change for f in link_fields], None, link_fields, None, js=playground.TOY_LINK_JS, queue=False,
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
                source.change(lambda s: [gr.Slider(visible=v) for v in playground.noise_fields(s)], source,
                              [a, b, fraction], api_visibility="private", queue=False)
                ks_btn.click(user_errors(ks_check), [source, a, b, fraction, n, ks_seed, session],
                             [in_plot, out_plot, qq_plot, ks_line, ks_result], api_name="ks_check", preprocess=False,
                             show_progress_on=[ks_line])
                curve_btn.click(user_errors(plots(drift.curve, 0)), [source, a, b, fraction, ks_seed, session],
                                [curve_plot, curve_note, curve_data], api_name="detection_curve", preprocess=False,
                                show_progress_on=[curve_plot])

            with gr.Tab("Model card", id="card"):
                card_table = gr.Dataframe(interactive=False, elem_id="card-table", wrap=True,
                                          label="Scores on standard test photos: PSNR / SSIM as in the SRGAN paper (higher is "
                                          "closer to the original); detail: the output's sharpness over the original's")
                card_plots = [gr.Plot(show_label=False, visible=False, elem_id=e) for e in ("card-tradeoff", "card-plot")]
                card_text = gr.Markdown(elem_id="card-text")

        def refresh():  # weights may be added while the server runs: every page load reads the folder again
            choices, card = studio.choices(HUB_DEFAULT), model_card.read_card(studio.bundled(), studio.label)
            figs = figures.perception_distortion(card.tradeoff), figures.validation_curves(card.curves)
            table = gr.Dataframe({"headers": card.headers, "data": card.rows}, column_widths=sr_job.column_widths(len(card.headers)))
            return (studio.notice(), gr.Dropdown(choices=choices, value=choices[0][1]), card.markdown, table,
                    *(gr.Plot(value=plot(f), visible=f is not None) for f in figs))

        demo.load(refresh, outputs=[notice, model, card_text, card_table, *card_plots], api_visibility="private")
        # outside the queue: a link's settings are in place at once, and the page's other load events wait for nothing
        demo.load(apply_link, outputs=[*link_fields, step_caption], queue=False, show_progress="hidden",
                  api_visibility="private")
        demo.load(None, js=playground.TOY_LINK_TAB_JS)
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve the srgan-studio web app. Host and port come from GRADIO_SERVER_NAME and "
        "GRADIO_SERVER_PORT when set, else 127.0.0.1:7860. Weights are read from weights/ (or SRGAN_WEIGHTS_DIR).")
    parser.add_argument("--host", default=None, help="interface to listen on, e.g. 0.0.0.0 for all")
    parser.add_argument("--port", type=int, default=None, help="port to listen on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    build_app().queue(max_size=64, default_concurrency_limit=2).launch(
        server_name=args.host, server_port=args.port, max_file_size="50mb", theme=gr.themes.Soft(), css_paths=ROOT / "app.css")


if __name__ == "__main__":
    main()
