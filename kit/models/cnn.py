"""Small CNNs written out in full (no timm): fast on a CPU, the earlier entrants' baseline."""

from __future__ import annotations

from kit.errors import KitError
from kit.models.zoo import register


def _block(cin: int, cout: int):
    """conv-BN-ReLU-maxpool, with the ReLU after the pool: max and ReLU commute, so it is the same
    function, and the ReLU (forward and backward) touches a quarter of the values."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.MaxPool2d(2), nn.ReLU(inplace=True)
    )


def conv_net(widths: tuple[int, ...], num_classes: int, in_chans: int, drop_rate: float, bands: int = 0):
    """conv-BN-ReLU-maxpool blocks, average + max pooling, dropout, linear head.

    bands = 0 pools over frequency and time; bands > 0 pools over time only and gives the head
    `bands` frequency bands (adaptive average over the pooled bins), so it sees where in
    frequency things are (pitch), not only what they are.
    """
    from torch import nn
    from torch.nn import functional as F

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = (in_chans, *widths)
            self.features = nn.Sequential(*(_block(a, b) for a, b in zip(chans, chans[1:])))
            self.drop = nn.Dropout(drop_rate)
            self.head = nn.Linear(widths[-1] * max(1, bands), num_classes)

        def forward(self, x):  # (B, C, F, T)
            x = self.features(x)
            if bands:
                x = F.adaptive_avg_pool1d(x.mean(dim=3) + x.amax(dim=3), bands).flatten(1)
            else:
                x = x.mean(dim=(2, 3)) + x.amax(dim=(2, 3))
            return self.head(self.drop(x))

    return ConvNet()


@register("cnn4", "4 conv-BN-ReLU-pool blocks (32-64-128-256), as entrant C")
def cnn4(num_classes: int, in_chans: int, drop_rate: float, stem: str, pretrained: bool | str):
    _no_pretrained("cnn4", pretrained)
    return conv_net((32, 64, 128, 256), num_classes, in_chans, drop_rate)


@register("cnn4f", "cnn4 whose head keeps 8 frequency bands (pools over time only)")
def cnn4f(num_classes: int, in_chans: int, drop_rate: float, stem: str, pretrained: bool | str):
    _no_pretrained("cnn4f", pretrained)
    return conv_net((32, 64, 128, 256), num_classes, in_chans, drop_rate, bands=8)


def _no_pretrained(name: str, pretrained: bool | str) -> None:
    if pretrained:
        raise KitError(f"{name} has no pretrained weights: set pretrained to false")
