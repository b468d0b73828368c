"""Trading venues other than Binance Spot Margin (Binance USD-M perpetual futures)."""
