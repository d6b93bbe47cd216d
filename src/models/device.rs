//! Picking a device: CUDA when the crate is built with the `cuda` feature and a GPU is present,
//! else the CPU.
use candle_core::Device;

/// The best available device (see the module docs).
pub fn best_device() -> Device {
    crate::threads::init();
    #[cfg(feature = "cuda")]
    {
        if let Ok(d) = Device::new_cuda(0) {
            return d;
        }
    }
    Device::Cpu
}

/// `Device::best()` for notebooks: `use massivetext::prelude::*; let dev = Device::best();`
pub trait DeviceExt {
    fn best() -> Device;
}

impl DeviceExt for Device {
    fn best() -> Device {
        best_device()
    }
}
