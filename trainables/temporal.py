"""The video generator's temporal front end: a window of T frames -> features of the centre frame, by 3D convolutions.

The paper's video model convolves across 5 neighbouring frames in 3D; its future work
feeds the neighbours as differences from the centre frame. `TemporalHead` is both: it
replaces the single-image generator's head (conv9 + PReLU over 3 channels) and hands the
same (B, C, h, w) features to the unchanged SRResNet body, upsampler and output stage
(`models.Generator(head=...)`), whose bicubic skip upsamples the centre frame. Window 1
never gets here: `models.build_generator` builds the plain single-image generator.

Frames arrive as a channel stack, frame-major: (B, T*3, h, w) with channels 3j..3j+2
holding frame t-k+j (k = T // 2), so the centre frame t is channels 3k..3k+2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

TEMPORAL_INPUTS = ("frames", "diffs")  # config.ModelConfig.temporal_input's Literal
WINDOWS = (3, 5)  # window sizes the front end takes; 1 is the single-image generator


def as_diffs(frames: Tensor) -> Tensor:
    """(B, T, C, h, w) -> the same window with every neighbour replaced by (neighbour - centre).

    The centre frame itself stays as is, so the content is still there and the
    neighbours carry only what changed: motion and the sub-pixel detail it reveals.
    """
    k = frames.shape[1] // 2
    centre = frames[:, k : k + 1]  # (B, 1, C, h, w)
    return torch.cat([frames[:, :k] - centre, centre, frames[:, k + 1 :] - centre], dim=1)


class TemporalHead(nn.Module):
    """(B, T*3, h, w) in [-1, 1] -> (B, C, h, w) features, by 'valid' 3D convolutions over time.

    Conv3d(3 -> C, kernel 3x9x9, no temporal padding) + PReLU takes T to T - 2 (its 9x9
    spatial extent matches the single-image head's conv9); each further
    Conv3d(C -> C, 3x3x3) + PReLU takes off 2 more, so T = 3 uses one layer and T = 5
    two (5 -> 3 -> 1: slow fusion, weights shared over time). Spatial padding keeps h x w.
    `temporal_input` "diffs" feeds the neighbours as differences from the centre frame.
    """

    def __init__(self, frames: int, channels: int, temporal_input: str = "frames") -> None:
        super().__init__()
        if frames not in WINDOWS:
            raise ValueError(f"frames: got {frames}, the temporal head takes {' or '.join(map(str, WINDOWS))}")
        if temporal_input not in TEMPORAL_INPUTS:
            raise ValueError(f"temporal_input: got {temporal_input!r}, expected one of {', '.join(TEMPORAL_INPUTS)}")
        self.frames = frames
        self.temporal_input = temporal_input
        layers: list[nn.Module] = [nn.Conv3d(3, channels, (3, 9, 9), padding=(0, 4, 4)), nn.PReLU(channels)]
        for _ in range((frames - 3) // 2):
            layers += [nn.Conv3d(channels, channels, (3, 3, 3), padding=(0, 1, 1)), nn.PReLU(channels)]
        self.fuse = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        if c != 3 * self.frames:
            raise ValueError(f"temporal head built for {self.frames} frames ({3 * self.frames} channels), got {c}")
        window = x.reshape(b, self.frames, 3, h, w)  # (B, T, 3, h, w), frames t-k..t+k
        if self.temporal_input == "diffs":
            window = as_diffs(window)
        feats = self.fuse(window.transpose(1, 2))  # Conv3d wants (B, 3, T, h, w); gives (B, C, 1, h, w)
        return feats.squeeze(2)  # (B, C, h, w)
