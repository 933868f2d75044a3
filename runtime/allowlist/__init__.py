"""What the exporter produces, checked in pure Python before any interpreter sees a byte."""
