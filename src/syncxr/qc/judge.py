"""MLLM judge: ask a multimodal LLM whether a real chest X-ray is problematic.

Used to build the bank of problematic real images for image QC (SynCXR step 6): each image is
sent as a base64 PNG data URL to an OpenAI-compatible vision chat endpoint (e.g. InternVL or
Qwen-VL behind `vllm serve`), with a prompt asking for a JSON verdict. A failure on one image
(unreadable file, transport error, unparseable answer) is recorded on that image, never raised.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from syncxr.errors import UserError
from syncxr.transports.base import LLMError, TransportError
from syncxr.transports.openai_http import OpenAIChatTransport

log = logging.getLogger(__name__)

DEFAULT_PROMPT = (
    "You are checking chest X-ray images for a dataset. Is this image problematic? An image is "
    "problematic if it is not a frontal chest radiograph, or if it is rotated or flipped, cropped "
    "so that part of the chest is missing, over- or under-exposed, blurred, or covered by large "
    "artifacts, text overlays or foreign objects that hide the lungs. Answer with JSON only: "
    '{"problematic": true or false, "reason": "<a few words>"}'
)


class JudgeParseError(LLMError):
    reason = "judge_parse_error"


@dataclass
class Judgement:
    """The judge's verdict on one image; problematic is None when the image could not be judged."""

    path: str
    problematic: bool | None
    reason: str = ""
    error: str = ""


_BOOL_WORDS = {"true": True, "yes": True, "false": False, "no": False}


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    return _BOOL_WORDS.get(str(value).strip().lower())


def parse_judgement(answer: str) -> tuple[bool, str]:
    """(is_problematic, reason) from a JSON object in the answer, or from a leading yes / no."""
    text = re.sub(r"<think>.*?(?:</think>|$)", "", answer, flags=re.IGNORECASE | re.DOTALL)
    text = text.replace("```json", " ").replace("```", " ").strip()
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            obj = json.loads(match.group())
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            raw = obj.get("problematic", obj.get("is_problematic"))
            verdict = _as_bool(raw)
            if verdict is not None:
                return verdict, str(obj.get("reason", "")).strip()
    plain = re.match(r"^[\W_]*(yes|no)\b[\W_]*(.*)", text, re.IGNORECASE | re.DOTALL)
    if plain:
        return plain.group(1).lower() == "yes", " ".join(plain.group(2).split())
    raise JudgeParseError(f"no JSON verdict or yes/no in the judge's answer: {answer[:160]!r}")


def png_data_url(image: np.ndarray, max_side: int = 512) -> str:
    """(H, W) uint8 -> 'data:image/png;base64,...', downscaled so the longer side is <= max_side."""
    from PIL import Image

    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class MLLMJudge:
    """Vision-chat judge over an OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        prompt: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 3,
        max_tokens: int = 128,
        max_side: int = 512,
    ) -> None:
        self.transport = OpenAIChatTransport(base_url, model, api_key_env, timeout, max_retries)
        self.prompt = prompt or DEFAULT_PROMPT
        self.max_tokens = max_tokens
        self.max_side = max_side
        self.backend_id = f"mllm-judge:{model}"

    def judge(self, image: np.ndarray) -> tuple[bool, str]:
        """(is_problematic, reason) for one (H, W) uint8 image; raises LLMError / TransportError."""
        content = [
            {"type": "text", "text": self.prompt},
            {"type": "image_url", "image_url": {"url": png_data_url(image, self.max_side)}},
        ]
        answer = self.transport.complete(
            [{"role": "user", "content": content}], temperature=0.0, max_tokens=self.max_tokens, seed=0
        )
        return parse_judgement(answer)

    def judge_images(self, paths: list[str | Path]) -> list[Judgement]:
        """A Judgement per image file, in order; failures are recorded in Judgement.error."""
        missing = [str(p) for p in paths if not Path(p).is_file()]
        if missing:
            raise UserError(f"{len(missing)} image file(s) not found, e.g. {missing[:5]}; check the image list")
        results = []
        for i, path in enumerate(paths):
            results.append(self._judge_path(str(path)))
            if (i + 1) % 100 == 0:
                log.info("judged %d/%d images", i + 1, len(paths))
        return results

    def _judge_path(self, path: str) -> Judgement:
        from syncxr.imread import ImageReadError, read_gray

        try:
            image = read_gray(path)  # (H, W) uint8; 16-bit windowed, bombs refused
        except ImageReadError as e:
            return Judgement(path, None, error=f"{e.reason}: {e}")
        try:
            problematic, reason = self.judge(image)
        except (LLMError, TransportError) as e:  # a judge run records every failure per image
            return Judgement(path, None, error=f"{e.reason}: {e}")
        return Judgement(path, problematic, reason)


def problem_bank(judgements: list[Judgement]) -> list[str]:
    """Paths the judge called problematic (the bank image QC compares generated images with)."""
    return [j.path for j in judgements if j.problematic]
