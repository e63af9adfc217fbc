module.exports = require('./report').clear;
