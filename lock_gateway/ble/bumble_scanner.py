"""bleak scanner backend on bumble: advertisements from a `BumbleAdapter` as bleak `BLEDevice`s."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal, cast

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bumble import core
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Device

from lock_gateway.ble.bumble_adapter import HCI_COMMAND_TIMEOUT_S, BumbleAdapter

_SERVICE_UUID_FIELDS = (
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
)
_BLUETOOTH_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def bleak_uuid(value: UUID) -> str:
    """bumble UUID -> bleak's normalised 128-bit lower-case string."""
    text = value.to_hex_str("-").lower()
    return text if len(text) == 36 else f"0000{text[-4:]}{_BLUETOOTH_BASE_UUID_SUFFIX}"


def adapter_from_kwargs(kwargs: dict[str, Any]) -> BumbleAdapter:
    adapter = kwargs.get("bumble_adapter")
    if not isinstance(adapter, BumbleAdapter):
        raise TypeError("the bumble backend needs bumble_adapter=<BumbleAdapter> among the bleak kwargs")
    return adapter


def _advertisement_data(adv: Advertisement) -> AdvertisementData:
    data = adv.data
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
    uuids = [bleak_uuid(u) for field in _SERVICE_UUID_FIELDS for u in cast(list[UUID], data.get(field) or [])]
    manufacturer: dict[int, bytes] = {}
    entry = data.get(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)
    if entry:
        company, payload = entry
        manufacturer[int(company)] = bytes(payload)
    tx_power = None if adv.tx_power == Advertisement.TX_POWER_NOT_AVAILABLE else adv.tx_power
    return AdvertisementData(
        local_name=str(name) if name else None,
        manufacturer_data=manufacturer,
        service_data={},
        service_uuids=uuids,
        tx_power=tx_power,
        rssi=adv.rssi,
        platform_data=(adv,),
    )


class BumbleBleakScanner(BaseBleakScanner):
    """Found devices carry `details=(adapter, bumble Address)`: the client connects without rescanning."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._adapter = adapter_from_kwargs(kwargs)
        self._active = scanning_mode != "passive"
        self._device: Device | None = None

    def _on_advertisement(self, adv: Advertisement) -> None:
        data = _advertisement_data(adv)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = adv.address.to_string(False)
        device = self.create_or_update_device(
            address, address, data.local_name, (self._adapter, adv.address), data
        )
        self.call_detection_callbacks(device, data)

    async def start(self) -> None:
        self.seen_devices = {}
        device = self._adapter.require_device()
        self._device = device
        device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        try:
            async with asyncio.timeout(HCI_COMMAND_TIMEOUT_S):
                await device.start_scanning(active=self._active, filter_duplicates=False)
        except BaseException:
            device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            self._device = None
            raise

    async def stop(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        if self._adapter.is_current(device):  # a lost transport has nothing left to stop
            with contextlib.suppress(TimeoutError, core.BaseBumbleError):
                async with asyncio.timeout(HCI_COMMAND_TIMEOUT_S):
                    await device.stop_scanning()
