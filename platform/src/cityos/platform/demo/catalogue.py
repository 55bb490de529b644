"""The simulated devices of `cityos demo`: real places in Omaezaki as Device + Sensor values."""

from __future__ import annotations

from dataclasses import dataclass

from cityos.platform.domain.ids import make_sensor_id
from cityos.platform.domain.model import Device, Domain, GeoPoint, Sensor

PAYLOAD_FORMAT = "json"


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """One simulated quantity: SenML unit, valid range and bilingual name."""

    quantity: str
    unit: str
    valid_min: float
    valid_max: float
    name_ja: str
    name_en: str


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    """A simulated device at a real place in Omaezaki, with its sensors."""

    id: str
    name_ja: str
    name_en: str
    domain: Domain
    lat: float
    lon: float
    sensors: tuple[SensorSpec, ...]

    @property
    def name(self) -> str:
        """Japanese name with the English one in brackets."""
        return f"{self.name_ja} ({self.name_en})"

    @property
    def location(self) -> GeoPoint:
        """Where the device stands."""
        return GeoPoint(lat=self.lat, lon=self.lon)

    def to_device(self) -> Device:
        """The domain `Device` to register in the catalog."""
        return Device(
            id=self.id,
            name=self.name,
            domain=self.domain,
            payload_format=PAYLOAD_FORMAT,
            location=self.location,
        )

    def to_sensors(self) -> list[Sensor]:
        """The domain `Sensor`s of this device, one per quantity."""
        return [
            Sensor(
                id=make_sensor_id(self.id, spec.quantity),
                device_id=self.id,
                quantity=spec.quantity,
                unit=spec.unit,
                domain=self.domain,
                name=f"{self.name_ja} {spec.name_ja} ({self.name_en}: {spec.name_en})",
                location=self.location,
                valid_min=spec.valid_min,
                valid_max=spec.valid_max,
            )
            for spec in self.sensors
        ]


def _wbgt(device_id: str, name_ja: str, name_en: str, lat: float, lon: float) -> SimulatedDevice:
    return SimulatedDevice(
        id=device_id,
        name_ja=f"{name_ja} 暑さ指数計",
        name_en=f"{name_en} WBGT meter",
        domain=Domain.HEALTH,
        lat=lat,
        lon=lon,
        sensors=(SensorSpec("wbgt", "Cel", -20.0, 45.0, "暑さ指数 (WBGT)", "WBGT heat index"),),
    )


# Coordinates: the port's tide gauge (JMA station 御前崎, 34°37'N 138°13'E), the cape and
# 御前埼灯台, 新野川 in the 新野 district, 御前崎市役所 (池新田), and two evacuation sites taken
# from the GSI data shipped with the demo (浜岡北小学校, 御前崎公園).
DEVICES: tuple[SimulatedDevice, ...] = (
    SimulatedDevice(
        id="omaezaki-port",
        name_ja="御前崎港 潮位計",
        name_en="Omaezaki port tide gauge",
        domain=Domain.DISASTER,
        lat=34.6167,
        lon=138.2167,
        sensors=(SensorSpec("tide_level", "m", -1.5, 4.0, "潮位", "tide level"),),
    ),
    SimulatedDevice(
        id="omaezaki-cape-marine",
        name_ja="御前崎 海況観測点",
        name_en="Omaezaki cape surf station",
        domain=Domain.TOURISM,
        lat=34.5962,
        lon=138.2236,
        sensors=(
            SensorSpec("wave_height", "m", 0.0, 15.0, "有義波高", "significant wave height"),
            SensorSpec("wind_speed", "m/s", 0.0, 60.0, "風速", "wind speed"),
            SensorSpec("wind_direction", "deg", 0.0, 360.0, "風向", "wind direction"),
        ),
    ),
    SimulatedDevice(
        id="niino-river",
        name_ja="新野川 水位雨量計",
        name_en="Niino river level and rain gauge",
        domain=Domain.DISASTER,
        lat=34.6561,
        lon=138.0989,
        sensors=(
            SensorSpec("water_level", "m", 0.0, 8.0, "河川水位", "river water level"),
            SensorSpec("rainfall", "mm", 0.0, 200.0, "1時間雨量", "rainfall in the past hour"),
        ),
    ),
    _wbgt("omaezaki-city-hall", "御前崎市役所", "Omaezaki city hall", 34.6378, 138.1282),
    _wbgt(
        "hamaoka-kita-school", "浜岡北小学校", "Hamaoka-kita elementary school", 34.6694, 138.1352
    ),
    _wbgt("omaezaki-park", "御前崎公園", "Omaezaki park", 34.6030, 138.2147),
    SimulatedDevice(
        id="omaezaki-lighthouse",
        name_ja="御前埼灯台 来訪者カウンター",
        name_en="Omaezaki lighthouse visitor counter",
        domain=Domain.TOURISM,
        lat=34.5951,
        lon=138.2261,
        sensors=(
            SensorSpec("visitors", "count", 0.0, 5000.0, "来訪者数（1時間）", "visitors per hour"),
        ),
    ),
    SimulatedDevice(
        id="omaezaki-cape-parking",
        name_ja="御前崎 岬駐車場",
        name_en="Omaezaki cape car park",
        domain=Domain.TOURISM,
        lat=34.5969,
        lon=138.2247,
        sensors=(SensorSpec("occupancy", "%", 0.0, 100.0, "駐車場占有率", "parking occupancy"),),
    ),
)


def device_by_id(device_id: str) -> SimulatedDevice:
    """The simulated device with that id; KeyError if there is none."""
    for device in DEVICES:
        if device.id == device_id:
            return device
    raise KeyError(device_id)


def devices_and_sensors() -> list[tuple[Device, list[Sensor]]]:
    """Every simulated device as domain values, ready for `Catalog.add_device`."""
    return [(device.to_device(), device.to_sensors()) for device in DEVICES]
